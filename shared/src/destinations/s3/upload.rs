//! Uploading exported files to S3: one `PutObject` for a file that fits in one part, else a multipart upload
//! with parts uploaded concurrently (at most `max_parts_in_flight` at once) and aborted on any failure, so a
//! failed run leaves no incomplete upload behind and no partial object (S3 only shows an object once
//! `CompleteMultipartUpload` succeeds).

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use bytes::Bytes;
use tokio::sync::mpsc::Receiver;
use tokio::task::JoinSet;

use super::config::{Encryption, S3DestinationConfig};
use crate::aws_error::classify_sdk_error;
use crate::engine::sink::{FileMessage, FileSink, PartBuffers, UploadSettings};
use crate::error::{ExportError, InternalContext, Result};

/// The bucket files go to, with the destination's encryption settings.
#[derive(Debug, Clone)]
pub struct S3Target {
    pub client: aws_sdk_s3::Client,
    pub bucket: String,
    pub encryption: Option<Encryption>,
    pub kms_key_id: Option<String>,
    /// The config's custom endpoint, for error classification.
    pub endpoint: Option<String>,
}

impl S3Target {
    pub fn new(client: aws_sdk_s3::Client, config: &S3DestinationConfig) -> Self {
        S3Target {
            client,
            bucket: config.bucket_name.clone(),
            encryption: config.encryption,
            kms_key_id: config.kms_key_id.clone(),
            endpoint: config.endpoint_url.clone(),
        }
    }

    fn sse(&self) -> Option<ServerSideEncryption> {
        self.encryption.map(|e| match e {
            Encryption::Aes256 => ServerSideEncryption::Aes256,
            Encryption::AwsKms => ServerSideEncryption::AwsKms,
        })
    }

    fn error<E>(
        &self,
        op: &'static str,
        key: &str,
        e: aws_sdk_s3::error::SdkError<E, aws_smithy_runtime_api::client::orchestrator::HttpResponse>,
    ) -> ExportError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        classify_sdk_error(e, op, &format!("{}/{key}", self.bucket), self.endpoint.as_deref())
    }

    /// Puts a whole object in one request.
    pub async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_server_side_encryption(self.sse())
            .set_ssekms_key_id(self.kms_key_id.clone())
            .send()
            .await
            .map_err(|e| self.error("PutObject", key, e))?;
        Ok(())
    }

    /// Aborts the multipart uploads left in progress under `prefix` (a writer that crashed mid-file never aborts
    /// its own); returns how many. An upload that finished or was aborted meanwhile is fine.
    pub async fn abort_uploads_under(&self, prefix: &str) -> Result<usize> {
        let (mut key_marker, mut upload_marker, mut aborted) = (None, None, 0);
        loop {
            let page = self
                .client
                .list_multipart_uploads()
                .bucket(&self.bucket)
                .prefix(prefix)
                .set_key_marker(key_marker)
                .set_upload_id_marker(upload_marker)
                .send()
                .await
                .map_err(|e| self.error("ListMultipartUploads", prefix, e))?;
            for upload in page.uploads() {
                let (Some(key), Some(id)) = (upload.key(), upload.upload_id()) else { continue };
                let done =
                    self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(id).send().await;
                match done {
                    Ok(_) => aborted += 1,
                    Err(e) if e.as_service_error().is_some_and(|s| s.is_no_such_upload()) => {}
                    Err(e) => return Err(self.error("AbortMultipartUpload", key, e)),
                }
            }
            if page.is_truncated() != Some(true) {
                return Ok(aborted);
            }
            (key_marker, upload_marker) = (page.next_key_marker, page.next_upload_id_marker);
        }
    }

    /// Deletes an object (one that is not there is fine). One DeleteObject per key: S3-compatible stores that
    /// lack DeleteObjects (GCS's XML API) take it too.
    pub async fn delete(&self, key: &str) -> Result<()> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map_err(|e| self.error("DeleteObject", key, e))?;
        Ok(())
    }
}

/// One file's multipart upload in progress.
struct Multipart {
    upload_id: Option<String>,
    in_flight: JoinSet<Result<CompletedPart>>,
    parts: Vec<CompletedPart>,
    next_part: i32,
    buffers: PartBuffers,
}

impl FileSink for S3Target {
    async fn put(&self, key: &str, body: Bytes) -> Result<()> {
        S3Target::put(self, key, body).await
    }

    /// One `PutObject` for a file that fits in one part, else a multipart upload, aborted on any failure.
    async fn write_file(
        &self,
        key: &str,
        parts: &mut Receiver<FileMessage>,
        settings: &UploadSettings,
        buffers: &PartBuffers,
    ) -> Result<Option<(u64, u64)>> {
        let mut upload = Multipart {
            upload_id: None,
            in_flight: JoinSet::new(),
            parts: Vec::new(),
            next_part: 1,
            buffers: buffers.clone(),
        };
        let result = upload.run(self, key, parts, settings).await;
        if !matches!(result, Ok(Some(_))) {
            upload.abort(self, key).await;
        }
        result
    }
}

impl Multipart {
    async fn run(
        &mut self,
        target: &S3Target,
        key: &str,
        rx: &mut Receiver<FileMessage>,
        settings: &UploadSettings,
    ) -> Result<Option<(u64, u64)>> {
        let mut bytes = 0u64;
        loop {
            match rx.recv().await {
                Some(FileMessage::Part(part)) => {
                    bytes += part.len() as u64;
                    self.start_part(target, key, part, settings).await?;
                }
                Some(FileMessage::End { tail, records }) => {
                    bytes += tail.len() as u64;
                    if self.upload_id.is_none() {
                        target.put(key, tail).await?;
                    } else {
                        if !tail.is_empty() {
                            self.start_part(target, key, tail, settings).await?;
                        }
                        self.complete(target, key).await?;
                    }
                    return Ok(Some((bytes, records)));
                }
                Some(FileMessage::Begin { key: next }) => {
                    return Err(ExportError::internal(format!("file `{next}` began before `{key}` ended")))
                }
                None => return Ok(None),
            }
        }
    }

    async fn start_part(&mut self, target: &S3Target, key: &str, body: Bytes, settings: &UploadSettings) -> Result<()> {
        let upload_id = match &self.upload_id {
            Some(id) => id.clone(),
            None => {
                let created = target
                    .client
                    .create_multipart_upload()
                    .bucket(&target.bucket)
                    .key(key)
                    .set_server_side_encryption(target.sse())
                    .set_ssekms_key_id(target.kms_key_id.clone())
                    .send()
                    .await
                    .map_err(|e| target.error("CreateMultipartUpload", key, e))?;
                let id = created.upload_id().unwrap_or_default().to_string();
                self.upload_id = Some(id.clone());
                id
            }
        };
        while self.in_flight.len() >= settings.max_parts_in_flight.max(1) {
            self.join_one().await?;
        }
        let number = self.next_part;
        self.next_part += 1;
        let (target, key, buffers) = (target.clone(), key.to_string(), self.buffers.clone());
        self.in_flight.spawn(async move {
            let kept = body.clone();
            let uploaded = target
                .client
                .upload_part()
                .bucket(&target.bucket)
                .key(&key)
                .upload_id(upload_id)
                .part_number(number)
                .body(ByteStream::from(body))
                .send()
                .await
                .map_err(|e| target.error("UploadPart", &key, e))?;
            buffers.give_back(kept);
            Ok(CompletedPart::builder().set_e_tag(uploaded.e_tag().map(str::to_string)).part_number(number).build())
        });
        Ok(())
    }

    async fn join_one(&mut self) -> Result<()> {
        if let Some(joined) = self.in_flight.join_next().await {
            let part = joined.internal("part upload task")??;
            self.parts.push(part);
        }
        Ok(())
    }

    async fn complete(&mut self, target: &S3Target, key: &str) -> Result<()> {
        while !self.in_flight.is_empty() {
            self.join_one().await?;
        }
        self.parts.sort_by_key(|p| p.part_number());
        target
            .client
            .complete_multipart_upload()
            .bucket(&target.bucket)
            .key(key)
            .upload_id(self.upload_id.clone().unwrap_or_default())
            .multipart_upload(
                CompletedMultipartUpload::builder().set_parts(Some(std::mem::take(&mut self.parts))).build(),
            )
            .send()
            .await
            .map_err(|e| target.error("CompleteMultipartUpload", key, e))?;
        self.upload_id = None;
        Ok(())
    }

    /// Stops the parts in flight and aborts the upload, if one was created.
    async fn abort(&mut self, target: &S3Target, key: &str) {
        self.in_flight.abort_all();
        while self.in_flight.join_next().await.is_some() {}
        let Some(upload_id) = self.upload_id.take() else { return };
        let aborted =
            target.client.abort_multipart_upload().bucket(&target.bucket).key(key).upload_id(&upload_id).send().await;
        match aborted {
            Ok(_) => tracing::info!(bucket = %target.bucket, key, "aborted multipart upload"),
            Err(e) => tracing::error!(
                bucket = %target.bucket, key, upload_id,
                error = %target.error("AbortMultipartUpload", key, e),
                "could not abort a multipart upload; the bucket's lifecycle rule must clean it up"
            ),
        }
    }
}
