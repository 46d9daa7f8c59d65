//! `SecretStore` on AWS Secrets Manager: secret `name` lives at `{prefix}{name}` as a
//! string secret; `put` adds a new current version (creating the secret on first use).

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;

use crate::ports::{SecretError, SecretStore, SecretString};

/// Secrets Manager behind the `SecretStore` port. Debug shows the prefix, never values.
#[derive(Debug, Clone)]
pub struct SecretsManagerStore {
    client: Client,
    prefix: String,
}

impl SecretsManagerStore {
    /// `prefix` (e.g. `deskbridge/prod/`) is put in front of every name.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        SecretsManagerStore {
            client,
            prefix: prefix.into(),
        }
    }

    fn id(&self, name: &str) -> String {
        format!("{}{}", self.prefix, name)
    }
}

#[async_trait]
impl SecretStore for SecretsManagerStore {
    #[tracing::instrument(skip_all, fields(%name))]
    async fn get(&self, name: &str) -> Result<Option<SecretString>, SecretError> {
        match self.client.get_secret_value().secret_id(self.id(name)).send().await {
            Ok(out) => Ok(out.secret_string.map(SecretString::new)),
            // Also what a secret created without any value answers.
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) =>
            {
                Ok(None)
            }
            Err(e) => Err(SecretError::unavailable(e)),
        }
    }

    #[tracing::instrument(skip_all, fields(%name))]
    async fn put(&self, name: &str, value: &SecretString) -> Result<(), SecretError> {
        let id = self.id(name);
        let put = self
            .client
            .put_secret_value()
            .secret_id(&id)
            .secret_string(value.expose())
            .send()
            .await;
        match put {
            Ok(_) => return Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_resource_not_found_exception()) => {}
            Err(e) => return Err(SecretError::unavailable(e)),
        }
        let created = self
            .client
            .create_secret()
            .name(&id)
            .secret_string(value.expose())
            .send()
            .await;
        match created {
            Ok(_) => Ok(()),
            // Another writer created it between our two calls: store our value over theirs.
            Err(e) if e.as_service_error().is_some_and(|s| s.is_resource_exists_exception()) => self
                .client
                .put_secret_value()
                .secret_id(&id)
                .secret_string(value.expose())
                .send()
                .await
                .map(drop)
                .map_err(SecretError::unavailable),
            Err(e) => Err(SecretError::unavailable(e)),
        }
    }
}
