//! The server as a runner sees it: gitlab-runner's protocol over HTTP, the same calls and
//! headers gitlab-runner makes, so `kiln runner` works against GitLab too.

use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

/// Long polls last up to the server's timeout (50 s by default); gitlab-runner allows 10
/// minutes for the answer's headers.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The server answered with this status; `job_status` is its `Job-Status` header.
    #[error("the server answered {status}")]
    Status {
        status: u16,
        job_status: Option<String>,
    },
    #[error("{0}")]
    Network(String),
}

impl CallError {
    /// The job is no longer this runner's: a 403 (canceled, finished, failed by the server),
    /// or a `Job-Status` that says it ended.
    pub fn job_is_gone(&self) -> bool {
        match self {
            CallError::Status { status, job_status } => {
                *status == 403
                    || *status == 404
                    || job_status
                        .as_deref()
                        .is_some_and(|s| s == "canceled" || s == "failed")
            }
            CallError::Network(_) => false,
        }
    }
}

impl From<reqwest::Error> for CallError {
    fn from(err: reqwest::Error) -> Self {
        CallError::Network(err.to_string())
    }
}

#[derive(Clone)]
pub struct Coordinator {
    client: reqwest::Client,
    /// `<url>/api/v4`.
    api: String,
}

/// What the runner says of itself on every call.
pub fn info() -> Value {
    json!({
        "name": "kiln-runner",
        "version": env!("CARGO_PKG_VERSION"),
        "platform": std::env::consts::OS,
        "architecture": std::env::consts::ARCH,
        "executor": "shell",
        "shell": "bash",
        "features": {
            "variables": true, "artifacts": true, "upload_raw_artifacts": true,
            "trace_reset": true, "trace_checksum": false, "trace_size": true,
            "cancelable": true, "return_exit_code": true, "raw_variables": true,
        },
    })
}

fn job_status(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("job-status")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

fn refused(response: &reqwest::Response) -> CallError {
    CallError::Status {
        status: response.status().as_u16(),
        job_status: job_status(response),
    }
}

impl Coordinator {
    /// The server at `url` (a trailing `/` or `/ci` is dropped, as gitlab-runner does).
    pub fn new(url: &str) -> anyhow::Result<Coordinator> {
        let base = url.trim_end_matches('/');
        let base = base.strip_suffix("/ci").unwrap_or(base);
        anyhow::ensure!(
            base.starts_with("http://") || base.starts_with("https://"),
            "the server URL must start with http:// or https://, got {url:?}"
        );
        let client = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(10))
            .user_agent(concat!("kiln-runner ", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Coordinator {
            client,
            api: format!("{base}/api/v4"),
        })
    }

    /// `POST /runners`: the new runner's id and token.
    pub async fn register(&self, body: Value) -> Result<(i64, String), CallError> {
        let response = self
            .client
            .post(format!("{}/runners", self.api))
            .json(&body)
            .send()
            .await?;
        if response.status() != 201 {
            return Err(refused(&response));
        }
        let body: Value = response.json().await?;
        match (body["id"].as_i64(), body["token"].as_str()) {
            (Some(id), Some(token)) => Ok((id, token.to_owned())),
            _ => Err(CallError::Network(format!("unexpected answer: {body}"))),
        }
    }

    /// `POST /jobs/request`: a job (201), or None when the long poll ended empty (204).
    pub async fn request_job(&self, token: &str) -> Result<Option<Value>, CallError> {
        let response = self
            .client
            .post(format!("{}/jobs/request", self.api))
            .header("RUNNER-TOKEN", token)
            .json(&json!({ "token": token, "info": info(), "last_update": "" }))
            .send()
            .await?;
        match response.status().as_u16() {
            201 => Ok(Some(response.json().await?)),
            204 => Ok(None),
            _ => Err(refused(&response)),
        }
    }

    /// `PUT /jobs/:id`: `state` running (keep-alive), success or failed.
    pub async fn update(&self, job: i64, token: &str, body: Value) -> Result<(), CallError> {
        let mut body = body;
        body["token"] = json!(token);
        body["info"] = info();
        let response = self
            .client
            .put(format!("{}/jobs/{job}", self.api))
            .header("JOB-TOKEN", token)
            .json(&body)
            .send()
            .await?;
        let gone = job_status(&response).is_some_and(|s| s == "canceled" || s == "failed");
        if response.status() == 200 && !gone {
            return Ok(());
        }
        Err(refused(&response))
    }

    /// `PATCH /jobs/:id/trace` with `data` at `offset`. On a 416 the server's length comes
    /// back as the error's `status` 416 and is in `Range`.
    pub async fn patch_trace(
        &self,
        job: i64,
        token: &str,
        offset: u64,
        data: &[u8],
    ) -> Result<(), CallError> {
        let end = offset + data.len() as u64;
        let response = self
            .client
            .patch(format!("{}/jobs/{job}/trace", self.api))
            .header("JOB-TOKEN", token)
            .header("Content-Type", "text/plain")
            .header(
                "Content-Range",
                format!("{offset}-{}", end.saturating_sub(1)),
            )
            .body(data.to_vec())
            .send()
            .await?;
        let gone = job_status(&response).is_some_and(|s| s == "canceled" || s == "failed");
        if response.status() == 202 && !gone {
            return Ok(());
        }
        Err(refused(&response))
    }

    /// `POST /jobs/:id/artifacts`: the file `zip` as the multipart `file`, streamed, of
    /// `kind` (artifact_type, artifact_format): ("archive", "zip") or ("dotenv", "gzip").
    pub async fn upload_artifacts(
        &self,
        job: i64,
        token: &str,
        (zip, file_name): (&Path, &str),
        (artifact_type, artifact_format): (&str, &str),
    ) -> Result<(), CallError> {
        let file = tokio::fs::File::open(zip)
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        let boundary = format!("kiln{}", kiln_store::new_secret());
        let head = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{}\"\r\n\
             Content-Type: application/zip\r\n\r\n",
            file_name.replace(['"', '\r', '\n'], "_")
        );
        let tail = format!("\r\n--{boundary}--\r\n");
        let body = futures_util::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from(head))])
            .chain(file_stream(file))
            .chain(futures_util::stream::iter([Ok(bytes::Bytes::from(tail))]));
        let response = self
            .client
            .post(format!(
                "{}/jobs/{job}/artifacts?artifact_format={artifact_format}&artifact_type={artifact_type}",
                self.api
            ))
            .header("JOB-TOKEN", token)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(reqwest::Body::wrap_stream(body))
            .send()
            .await?;
        if response.status() == 201 {
            return Ok(());
        }
        Err(refused(&response))
    }

    /// `GET /jobs/:id/artifacts` with a dependency's token, written to `target`.
    pub async fn download_artifacts(
        &self,
        job: i64,
        token: &str,
        target: &Path,
    ) -> Result<(), CallError> {
        let mut response = self
            .client
            .get(format!("{}/jobs/{job}/artifacts", self.api))
            .header("JOB-TOKEN", token)
            .send()
            .await?;
        if response.status() != 200 {
            return Err(refused(&response));
        }
        let mut out = tokio::fs::File::create(target)
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        while let Some(chunk) = response.chunk().await? {
            tokio::io::AsyncWriteExt::write_all(&mut out, &chunk)
                .await
                .map_err(|e| CallError::Network(e.to_string()))?;
        }
        // tokio's File writes in the background: without this the last chunk may still be
        // on its way when the archive is read (a truncated zip, "Could not find EOCD").
        tokio::io::AsyncWriteExt::flush(&mut out)
            .await
            .map_err(|e| CallError::Network(e.to_string()))?;
        Ok(())
    }
}

use futures_util::StreamExt;

fn file_stream(
    file: tokio::fs::File,
) -> impl futures_util::Stream<Item = std::io::Result<bytes::Bytes>> {
    futures_util::stream::unfold(file, |mut file| async move {
        let mut buffer = vec![0u8; 256 * 1024];
        match tokio::io::AsyncReadExt::read(&mut file, &mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok(bytes::Bytes::from(buffer)), file))
            }
            Err(err) => Some((Err(err), file)),
        }
    })
}
