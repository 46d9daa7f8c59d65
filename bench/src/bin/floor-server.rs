//! `floor-server --listen ADDR --db PATH`: the floor server of the ingest benchmark as a
//! process of its own; prints `floor listening on http://ADDR` once bound.

use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
struct Args {
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: String,
    #[arg(long)]
    db: PathBuf,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let conn = deskbridge_bench::floor::open(&args.db)?;
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("floor listening on http://{}", listener.local_addr()?);
    axum::serve(listener, deskbridge_bench::floor::router(conn)).await?;
    Ok(())
}
