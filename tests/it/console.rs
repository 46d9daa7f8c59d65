//! The web console's routes and the endpoints its screens added: every asset with its
//! content type and the console's security headers on both hosts' routers, unknown assets
//! 404, only same-origin references in the shipped files, and (on both stores) the chat
//! list, the Datto site list with mapping and unmapping, and the operations health.

use std::sync::Arc;

use axum::body::Body;
use deskbridge::datto::fake::FakeDatto;
use deskbridge::http::console::{asset, ASSETS, INDEX_HTML};
use deskbridge::http::security::CONSOLE_CSP;
use deskbridge::ports::QueueName;
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::desk::{on_both_stores, Desk};

async fn get_raw(router: &axum::Router, path: &str) -> (u16, http::HeaderMap, Vec<u8>) {
    let req = http::Request::builder().uri(path).body(Body::empty()).unwrap();
    let resp = router.clone().oneshot(req).await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap().to_vec();
    (status, headers, body)
}

fn header<'a>(h: &'a http::HeaderMap, name: &str) -> &'a str {
    h.get(name).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// Both hosts' routers: the helpdesk-api Lambda's and the local server's.
fn routers() -> Vec<(&'static str, axum::Router, tempfile::TempDir)> {
    let mut out = Vec::new();
    for host in ["lambda", "local"] {
        let clock = Arc::new(deskbridge::ports::ManualClock::new(chrono::Utc::now()));
        let (records, dir) = deskbridge_tests::stores::sqlite(clock.clone());
        let d = crate::desk::desk_on(records, clock);
        let router = if host == "lambda" {
            deskbridge::http::helpdesk_router(d.ctx.clone())
        } else {
            deskbridge_local::local_router(d.ctx.clone(), d.outbox.clone())
        };
        out.push((host, router, dir));
    }
    out
}

#[tokio::test]
async fn the_page_and_every_asset_are_served_with_their_content_type_and_the_console_policy() {
    for (host, router, _dir) in routers() {
        let (s, h, body) = get_raw(&router, "/console").await;
        assert_eq!(s, 200, "{host}");
        assert_eq!(header(&h, "content-type"), "text/html; charset=utf-8", "{host}");
        assert_eq!(body, INDEX_HTML.as_bytes(), "{host}");
        let mut paths = vec![("/console".to_string(), "text/html; charset=utf-8")];
        for a in ASSETS {
            let path = format!("/console/assets/{}", a.name);
            let (s, h, body) = get_raw(&router, &path).await;
            assert_eq!(s, 200, "{host} {path}");
            assert_eq!(body, a.body.as_bytes(), "{host} {path}");
            let want = if a.name.ends_with(".js") {
                "text/javascript; charset=utf-8"
            } else {
                "text/css; charset=utf-8"
            };
            assert_eq!(header(&h, "content-type"), want, "{host} {path}");
            paths.push((path, want));
        }
        for (path, _) in paths {
            let (_, h, _) = get_raw(&router, &path).await;
            assert_eq!(header(&h, "content-security-policy"), CONSOLE_CSP, "{host} {path}");
            assert_eq!(header(&h, "x-content-type-options"), "nosniff", "{host} {path}");
            assert_eq!(header(&h, "x-frame-options"), "DENY", "{host} {path}");
            assert_eq!(header(&h, "referrer-policy"), "no-referrer", "{host} {path}");
            assert_eq!(header(&h, "cache-control"), "no-cache", "{host} {path}");
            assert!(!header(&h, "x-request-id").is_empty(), "{host} {path}");
        }
    }
}

#[tokio::test]
async fn an_unknown_asset_is_404_in_words_and_no_token_is_needed_for_the_console() {
    for (host, router, _dir) in routers() {
        for path in [
            "/console/assets/nope.js",
            "/console/assets/..%2Fconsole.css",
            "/console/assets/APP.JS",
        ] {
            let (s, h, body) = get_raw(&router, path).await;
            assert_eq!(s, 404, "{host} {path}");
            let v: Value = serde_json::from_slice(&body).unwrap();
            assert_eq!(v["error"], "NOT_FOUND", "{host} {path}");
            assert!(
                v["message"].as_str().unwrap().contains("no asset named"),
                "{host} {path}: {v}"
            );
            assert_eq!(header(&h, "content-security-policy"), CONSOLE_CSP, "{host} {path}");
        }
        // The API next to it still wants its token.
        let (s, _, _) = get_raw(&router, "/api/tickets").await;
        assert_eq!(s, 401, "{host}");
    }
}

/// The quoted values of `attr="..."` in `html`.
fn attribute_values<'a>(html: &'a str, attr: &str) -> Vec<&'a str> {
    let needle = format!("{attr}=\"");
    html.match_indices(&needle)
        .map(|(i, _)| {
            let rest = &html[i + needle.len()..];
            &rest[..rest.find('"').unwrap()]
        })
        .collect()
}

#[test]
fn the_shipped_files_reference_only_this_origin_and_nothing_inline() {
    let refs: Vec<&str> = attribute_values(INDEX_HTML, "src")
        .into_iter()
        .chain(attribute_values(INDEX_HTML, "href"))
        .collect();
    assert!(refs.len() >= 4, "{refs:?}");
    for r in &refs {
        if let Some(name) = r.strip_prefix("/console/assets/") {
            assert!(
                asset(name).is_some(),
                "index.html references {r}, which is not embedded"
            );
        } else {
            assert!(
                r.starts_with('#') || *r == "data:,",
                "index.html references {r}: only /console/assets/..., #fragments and the empty data: icon"
            );
        }
    }
    assert!(!INDEX_HTML.contains("style="), "no inline style attribute");
    assert!(!INDEX_HTML.contains("<style"), "no inline style sheet");
    for script in INDEX_HTML.split("<script").skip(1) {
        let body = &script[script.find('>').unwrap() + 1..script.find("</script>").unwrap()];
        assert!(body.trim().is_empty(), "an inline script: {body}");
    }
    for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        for (i, _) in a.body.match_indices(" from '") {
            let rest = &a.body[i + 7..];
            let target = &rest[..rest.find('\'').unwrap()];
            if let Some(local) = target.strip_prefix("./") {
                assert!(
                    asset(local).is_some(),
                    "{} imports {target}, which is not embedded",
                    a.name
                );
            } else {
                panic!(
                    "{} imports {target}: only the console's own modules may be imported",
                    a.name
                );
            }
        }
        for banned in [
            "innerHTML",
            "outerHTML",
            "eval(",
            "new Function",
            "import(",
            "document.write",
            ".style.",
        ] {
            assert!(!a.body.contains(banned), "{} uses {banned}", a.name);
        }
        // fetch goes through api.js, which only ever fetches a path on this origin.
        if a.name != "api.js" {
            assert!(!a.body.contains("fetch("), "{} calls fetch directly", a.name);
        }
    }
    let api = asset("api.js").unwrap().body;
    assert!(api.contains("fetch(path,"), "api.js fetches the path it is given");
    for a in ASSETS.iter().filter(|a| a.name.ends_with(".js")) {
        for call in [
            "api.get(`",
            "api.post(`",
            "api.put(`",
            "api.del(`",
            "api.get('",
            "api.post('",
        ] {
            for (i, _) in a.body.match_indices(call) {
                let path = &a.body[i + call.len()..];
                assert!(
                    path.starts_with("/api/"),
                    "{}: {call}{}",
                    a.name,
                    &path[..path.len().min(40)]
                );
            }
        }
    }
    let css = asset("console.css").unwrap().body;
    assert!(
        !css.contains("@import") && !css.contains("url("),
        "the style sheet loads nothing"
    );
}

// ---- endpoints the screens need, on both stores ---------------------------------------

async fn chats_are_listed_and_open_leaves_out_the_ended(d: Desk) {
    let (s, c) = d.post("/api/customers", json!({"name": "Fabrikam"})).await;
    assert_eq!(s, 201, "{c}");
    let mut ids = Vec::new();
    for name in ["Mark", "Ana", "Joe"] {
        let (s, chat) = d.post("/api/chats", json!({"user_name": name})).await;
        assert_eq!(s, 201, "{chat}");
        ids.push(chat["id"].as_u64().unwrap());
    }
    let (s, _) = d.post(&format!("/api/chats/{}/end", ids[1]), json!({})).await;
    assert_eq!(s, 200);
    let (s, all) = d.get("/api/chats").await;
    assert_eq!(s, 200, "{all}");
    let listed: Vec<u64> = all["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, ids);
    let (_, open) = d.get("/api/chats?open=true").await;
    let listed: Vec<u64> = open["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_u64().unwrap())
        .collect();
    assert_eq!(listed, vec![ids[0], ids[2]]);
    let (_, page) = d.get("/api/chats?limit=1").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 1);
    assert!(page["next"].is_string(), "{page}");
    let (s, bad) = d.get("/api/chats?open=maybe").await;
    assert_eq!((s, bad["error"].as_str()), (400, Some("VALIDATION")), "{bad}");
}

/// The desk with its Datto client built from the settings (loopback allowed for the fake).
async fn with_datto(mut d: Desk, fake: &FakeDatto) -> Desk {
    d.ctx.datto = Arc::new(deskbridge::datto::connect::SettingsConnect::new(
        d.ctx.store.clone(),
        d.ctx.secrets.clone(),
        true,
    ));
    let (s, cfg) = d
        .put(
            "/api/config/datto",
            json!({"api_url": fake.base_url(), "api_key": FakeDatto::API_KEY, "api_secret": FakeDatto::API_SECRET}),
        )
        .await;
    assert_eq!(s, 200, "{cfg}");
    d
}

async fn datto_sites_are_listed_beside_their_mappings_and_can_be_unmapped(d: Desk) {
    let (s, refused) = d.get("/api/datto/sites").await;
    assert_eq!(
        (s, refused["error"].as_str()),
        (409, Some("DATTO_API_NOT_CONFIGURED")),
        "{refused}"
    );
    let fake = FakeDatto::start().await;
    fake.seed_fixtures();
    let d = with_datto(d, &fake).await;
    let (s, c) = d.post("/api/customers", json!({"name": "Acme"})).await;
    assert_eq!(s, 201, "{c}");
    let (s, sites) = d.get("/api/datto/sites").await;
    assert_eq!(s, 200, "{sites}");
    let items = sites["items"].as_array().unwrap();
    assert_eq!(items.len(), fake.site_count(), "{sites}");
    assert!(items.iter().all(|s| s.get("mapping").is_none()), "{sites}");
    let uid = items[0]["uid"].as_str().unwrap().to_string();
    let body = json!({"customer_id": c["id"], "site_id": c["main_site_id"]});
    let (s, m) = d.put(&format!("/api/site-mappings/{uid}"), body).await;
    assert_eq!(s, 200, "{m}");
    let (_, sites) = d.get("/api/datto/sites").await;
    let row = sites["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["uid"] == uid.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["mapping"]["site_id"], c["main_site_id"], "{row}");

    let (s, gone) = d
        .call("DELETE", &format!("/api/site-mappings/{uid}"), None, vec![], true)
        .await;
    assert_eq!(s, 200, "{gone}");
    assert_eq!(gone["datto_site_uid"], uid.as_str());
    let (s, _) = d.get(&format!("/api/site-mappings/{uid}")).await;
    assert_eq!(s, 404);
    let (s, again) = d
        .call("DELETE", &format!("/api/site-mappings/{uid}"), None, vec![], true)
        .await;
    assert_eq!((s, again["error"].as_str()), (404, Some("NOT_FOUND")), "{again}");
    let (_, sites) = d.get("/api/datto/sites").await;
    assert!(sites["items"]
        .as_array()
        .unwrap()
        .iter()
        .all(|s| s.get("mapping").is_none()));
}

async fn health_shows_queue_depths_vendor_calls_and_the_datto_budget(d: Desk) {
    let (s, h) = d.get("/api/operations/health").await;
    assert_eq!(s, 200, "{h}");
    assert_eq!(h["queues"].as_array().unwrap().len(), QueueName::ALL.len(), "{h}");
    assert!(
        h["datto"]["last_success"].is_null() && h["datto"]["last_failure"].is_null(),
        "{h}"
    );
    assert_eq!(h["datto_budget"]["used"], 0, "{h}");
    assert_eq!(h["datto_budget"]["limit"], 500, "{h}");

    d.ctx.queue.send(QueueName::AlertEnrich, "{}").await.unwrap();
    let fake = FakeDatto::start().await;
    fake.seed_fixtures();
    let d = with_datto(d, &fake).await;
    let (s, t) = d.post("/api/config/datto/test", json!({})).await;
    assert_eq!((s, t["ok"].as_bool()), (200, Some(true)), "{t}");
    let (_, h) = d.get("/api/operations/health").await;
    let enrich = h["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["queue"] == "alert-enrich")
        .unwrap()
        .clone();
    assert_eq!(
        (enrich["waiting"].as_u64(), enrich["dead_letters"].as_u64()),
        (Some(1), Some(0)),
        "{h}"
    );
    assert_eq!(h["datto"]["last_success"]["call"], "account", "{h}");
    assert!(h["datto"]["last_failure"].is_null(), "{h}");
    let used = h["datto_budget"]["used"].as_u64().unwrap();
    assert!(used >= 1, "the connection test's calls count in the shared budget: {h}");

    fake.fail_next(3, deskbridge::datto::fake::Failure::Status(409));
    let (_, t) = d.post("/api/config/datto/test", json!({})).await;
    assert_eq!(t["ok"], false, "{t}");
    let (_, h) = d.get("/api/operations/health").await;
    assert_eq!(h["datto"]["last_failure"]["call"], "account", "{h}");
    assert!(
        h["datto"]["last_failure"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{h}"
    );
    assert_eq!(
        h["datto"]["last_success"]["call"], "account",
        "the earlier success stays: {h}"
    );
    let text = h.to_string();
    assert!(
        !text.contains(FakeDatto::API_SECRET) && !text.contains(FakeDatto::API_KEY),
        "{h}"
    );
}

on_both_stores!(
    chats_are_listed_and_open_leaves_out_the_ended,
    datto_sites_are_listed_beside_their_mappings_and_can_be_unmapped,
    health_shows_queue_depths_vendor_calls_and_the_datto_budget,
);
