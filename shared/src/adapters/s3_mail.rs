//! Raw inbound mail stored by the SES receipt rule's S3 action, read back by message id.

use async_trait::async_trait;
use aws_sdk_s3::Client;

use crate::ports::{MailError, MailSource};

/// Reads `<prefix><message id>` from one bucket.
#[derive(Debug, Clone)]
pub struct S3MailSource {
    client: Client,
    bucket: String,
    prefix: String,
}

impl S3MailSource {
    pub fn new(client: Client, bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3MailSource {
            client,
            bucket: bucket.into(),
            prefix: prefix.into(),
        }
    }
}

#[async_trait]
impl MailSource for S3MailSource {
    #[tracing::instrument(skip_all, fields(message_id))]
    async fn fetch(&self, message_id: &str) -> Result<Vec<u8>, MailError> {
        let key = format!("{}{}", self.prefix, message_id);
        let out = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&key)
            .send()
            .await
            .map_err(|e| match e.as_service_error() {
                Some(se) if se.is_no_such_key() => {
                    MailError::Rejected(format!("no stored mail at s3://{}/{key}", self.bucket))
                }
                _ => MailError::Unavailable(Box::new(e)),
            })?;
        let bytes = out
            .body
            .collect()
            .await
            .map_err(|e| MailError::Unavailable(Box::new(e)))?;
        Ok(bytes.into_bytes().to_vec())
    }
}
