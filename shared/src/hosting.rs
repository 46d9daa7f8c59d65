//! Assembly of the ports for a Lambda host: SDK clients built once from the environment,
//! adapters around them, the API token fetched from Secrets Manager. Lambda mains call this.
//!
//! Every function gets DynamoDB and Secrets Manager; SQS, SES and S3 clients are built only
//! when its `main.rs` asks (`with_queue`, `with_mailer`, `mail_source`), so a function
//! neither builds nor links a client it does not use. Until asked, the queue and mailer
//! ports are `adapters::unwired` stand-ins that fail loudly.

use std::sync::Arc;

use crate::adapters::dynamo::DynamoRecordStore;
use crate::adapters::s3_mail::S3MailSource;
use crate::adapters::secrets_manager::SecretsManagerStore;
use crate::adapters::ses::SesMailer;
use crate::adapters::sqs::SqsQueue;
use crate::adapters::unwired::{UnwiredMailer, UnwiredQueue};
use crate::config::{AwsConfig, ConfigError, HttpConfig};
use crate::ports::{Clock, SecretStore, SystemClock};
use crate::services::Context;
use crate::store::Store;

/// Why a Lambda could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("could not read the API token secret {name}: {reason}")]
    ApiToken { name: String, reason: String },
}

/// Everything a Lambda needs, built once per cold start.
pub struct AwsHost {
    pub config: AwsConfig,
    pub sdk: aws_config::SdkConfig,
    pub ctx: Context,
}

/// The SDK configuration every AWS client of deskbridge starts from (the Lambdas here, the
/// tests and the bench with their endpoints added): the latest behaviour version and the
/// SDK's hyper 1 HTTPS client on rustls with ring, the one crypto provider of the build
/// (reqwest uses it too). The SDK crates are built without their default clients, so a
/// client made without this loader has no HTTP client and fails on its first call.
pub fn sdk_loader() -> aws_config::ConfigLoader {
    use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider};
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(http)
}

/// Read configuration, build the DynamoDB and Secrets Manager clients and their adapters,
/// and fetch the API token. Add the other clients with [`AwsHost::with_queue`],
/// [`AwsHost::with_mailer`] and [`AwsHost::mail_source`].
pub async fn aws_host() -> Result<AwsHost, StartupError> {
    let config = AwsConfig::from_env()?;
    let sdk = sdk_loader().load().await;
    let clock: Arc<dyn Clock> = Arc::new(SystemClock);
    let records = DynamoRecordStore::new(aws_sdk_dynamodb::Client::new(&sdk), config.table.clone());
    let secrets = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk), config.secret_prefix.clone());
    // The API token secret is named in full (it is not under the prefix).
    let token_store = SecretsManagerStore::new(aws_sdk_secretsmanager::Client::new(&sdk), "");
    let token = token_store
        .get(&config.api_token_secret)
        .await
        .map_err(|e| StartupError::ApiToken {
            name: config.api_token_secret.clone(),
            reason: e.to_string(),
        })?
        .ok_or_else(|| StartupError::ApiToken {
            name: config.api_token_secret.clone(),
            reason: "it has no value".into(),
        })?;
    let store = Store::new(Arc::new(records), clock.clone());
    let secrets: Arc<dyn SecretStore> = Arc::new(secrets);
    let ctx = Context {
        store: store.clone(),
        queue: Arc::new(UnwiredQueue),
        mailer: Arc::new(UnwiredMailer),
        secrets: secrets.clone(),
        clock,
        config: Arc::new(HttpConfig::new(token, &config.public_url)),
        datto: Arc::new(crate::datto::connect::SettingsConnect::new(
            store.clone(),
            secrets.clone(),
            config.allow_loopback_vendors,
        )),
        beyondtrust: Arc::new(crate::beyondtrust::connect::SettingsConnect::new(
            store.clone(),
            secrets.clone(),
            config.allow_loopback_vendors,
        )),
    };
    Ok(AwsHost { config, sdk, ctx })
}

impl AwsHost {
    /// Send to and read the SQS queues (functions that enqueue work, dead-letter what they
    /// consume, or list dead letters).
    pub fn with_queue(mut self) -> Self {
        let queue = SqsQueue::new(aws_sdk_sqs::Client::new(&self.sdk), self.config.queues.clone());
        self.ctx.queue = Arc::new(queue);
        self
    }

    /// Send mail through SES (functions that e-mail invitations).
    pub fn with_mailer(mut self) -> Self {
        self.ctx.mailer = Arc::new(SesMailer::new(aws_sdk_ses::Client::new(&self.sdk)));
        self
    }

    /// The S3 source of inbound mail (needs `MAIL_BUCKET`).
    pub fn mail_source(&self) -> Result<S3MailSource, StartupError> {
        let bucket = self
            .config
            .mail_bucket
            .clone()
            .ok_or(ConfigError::Missing("MAIL_BUCKET"))?;
        Ok(S3MailSource::new(
            aws_sdk_s3::Client::new(&self.sdk),
            bucket,
            self.config.mail_prefix.clone(),
        ))
    }
}
