//! What `nydusify commit` asks containerd (its gRPC API on the socket, through the containerd
//! project's generated client): a container's image, snapshot and mounts, its task's state,
//! and pausing and resuming that task. Nothing enters the container's namespaces: the
//! snapshot's mounts name the overlay upper directory on the host.

use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context, Result};
use containerd_client::services::v1::containers_client::ContainersClient;
use containerd_client::services::v1::snapshots::snapshots_client::SnapshotsClient;
use containerd_client::services::v1::snapshots::MountsRequest;
use containerd_client::services::v1::tasks_client::TasksClient;
use containerd_client::services::v1::{
    GetContainerRequest, GetRequest, ListContainersRequest, PauseTaskRequest, ResumeTaskRequest,
};
use containerd_client::tonic::transport::Channel;
use containerd_client::tonic::{Code, Request, Status};
use containerd_client::types::v1::Status as TaskStatus;

/// The request metadata key naming the namespace (containerd's `namespaces` package).
const NAMESPACE_HEADER: &str = "containerd-namespace";

/// A connection to containerd, in one namespace.
#[derive(Debug)]
pub struct Containerd {
    channel: Channel,
    namespace: String,
    address: PathBuf,
}

/// A container as commit needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerInfo {
    pub id: String,
    /// The image reference it was created from.
    pub image: String,
    pub snapshotter: String,
    pub snapshot_key: String,
    /// Its task's main process.
    pub pid: u32,
}

/// The directories of an overlay snapshot mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OverlayDirs {
    /// Top first, as in `lowerdir=`.
    pub lower: Vec<PathBuf>,
    pub upper: PathBuf,
}

impl Containerd {
    /// Connects to the socket at `address` and checks that containerd answers there.
    pub async fn connect(address: &Path, namespace: &str) -> Result<Containerd> {
        if !address.exists() {
            bail!(
                "containerd address {}: no such socket (is containerd running? --containerd-address names its socket)",
                address.display()
            );
        }
        let channel = containerd_client::connect(address)
            .await
            .map_err(|e| anyhow!("connecting to containerd at {}: {e}", address.display()))?;
        let c = Containerd {
            channel,
            namespace: namespace.to_string(),
            address: address.to_path_buf(),
        };
        // A socket that is not containerd's fails here, not halfway through the commit.
        containerd_client::services::v1::version_client::VersionClient::new(c.channel.clone())
            .version(())
            .await
            .map_err(|e| c.rpc_error("asking its version", e))?;
        Ok(c)
    }

    fn request<T>(&self, msg: T) -> Result<Request<T>> {
        let mut r = Request::new(msg);
        r.metadata_mut().insert(
            NAMESPACE_HEADER,
            self.namespace
                .parse()
                .map_err(|_| anyhow!("namespace {:?}: not a valid name", self.namespace))?,
        );
        Ok(r)
    }

    fn rpc_error(&self, what: &str, e: Status) -> anyhow::Error {
        anyhow!(
            "containerd at {} ({what}): {}: {}",
            self.address.display(),
            code_name(e.code()),
            e.message()
        )
    }

    /// The full id of the container `id` names: itself, or the one container whose id
    /// starts with it (as `ctr` and upstream accept a unique prefix).
    pub async fn resolve_id(&self, id: &str) -> Result<String> {
        if id.is_empty() {
            bail!("--container: empty container id");
        }
        let list = ContainersClient::new(self.channel.clone())
            .list(self.request(ListContainersRequest { filters: vec![] })?)
            .await
            .map_err(|e| self.rpc_error("listing containers", e))?
            .into_inner();
        let ids: Vec<&str> = list.containers.iter().map(|c| c.id.as_str()).collect();
        if ids.contains(&id) {
            return Ok(id.to_string());
        }
        let matching: Vec<&str> = ids.iter().copied().filter(|c| c.starts_with(id)).collect();
        match matching.as_slice() {
            [one] => Ok(one.to_string()),
            [] => bail!(
                "container {id:?} not found in namespace {:?} of containerd at {}",
                self.namespace,
                self.address.display()
            ),
            many => bail!(
                "container id {id:?} is ambiguous in namespace {:?}: {} containers start with it",
                self.namespace,
                many.len()
            ),
        }
    }

    /// The container `id` (a full id) and its running task.
    pub async fn inspect(&self, id: &str) -> Result<ContainerInfo> {
        let c = ContainersClient::new(self.channel.clone())
            .get(self.request(GetContainerRequest { id: id.to_string() })?)
            .await
            .map_err(|e| match e.code() {
                Code::NotFound => anyhow!(
                    "container {id:?} not found in namespace {:?}",
                    self.namespace
                ),
                _ => self.rpc_error("getting the container", e),
            })?
            .into_inner()
            .container
            .with_context(|| format!("containerd returned no container for {id:?}"))?;
        if c.image.is_empty() {
            bail!("container {id}: created from no image (commit needs the image it runs)");
        }
        if c.snapshot_key.is_empty() || c.snapshotter.is_empty() {
            bail!("container {id}: no snapshot (its rootfs is not a containerd snapshot)");
        }
        let task = TasksClient::new(self.channel.clone())
            .get(self.request(GetRequest {
                container_id: id.to_string(),
                exec_id: String::new(),
            })?)
            .await
            .map_err(|e| match e.code() {
                Code::NotFound => {
                    anyhow!("container {id}: not running (it has no task; start it, then commit)")
                }
                _ => self.rpc_error("getting the task", e),
            })?
            .into_inner()
            .process
            .with_context(|| format!("container {id}: containerd returned no task process"))?;
        let status = TaskStatus::try_from(task.status).unwrap_or(TaskStatus::Unknown);
        if status != TaskStatus::Running {
            bail!(
                "container {id}: not running (its task is {})",
                status.as_str_name().to_lowercase()
            );
        }
        Ok(ContainerInfo {
            id: id.to_string(),
            image: c.image,
            snapshotter: c.snapshotter,
            snapshot_key: c.snapshot_key,
            pid: task.pid,
        })
    }

    /// The overlay directories of the container's snapshot.
    pub async fn overlay_dirs(&self, c: &ContainerInfo) -> Result<OverlayDirs> {
        let mounts = SnapshotsClient::new(self.channel.clone())
            .mounts(self.request(MountsRequest {
                snapshotter: c.snapshotter.clone(),
                key: c.snapshot_key.clone(),
            })?)
            .await
            .map_err(|e| self.rpc_error("getting the snapshot's mounts", e))?
            .into_inner()
            .mounts;
        let m = match mounts.as_slice() {
            [m] => m,
            [] => bail!(
                "container {}: snapshot {} has no mounts",
                c.id,
                c.snapshot_key
            ),
            _ => bail!(
                "container {}: snapshot {} has {} mounts (one overlay mount expected)",
                c.id,
                c.snapshot_key,
                mounts.len()
            ),
        };
        overlay_dirs(&m.r#type, &m.options).with_context(|| {
            format!(
                "container {}: snapshot {} of snapshotter {}",
                c.id, c.snapshot_key, c.snapshotter
            )
        })
    }

    /// Pauses the container's task (its processes frozen while the layer is taken).
    pub async fn pause(&self, id: &str) -> Result<()> {
        TasksClient::new(self.channel.clone())
            .pause(self.request(PauseTaskRequest {
                container_id: id.to_string(),
            })?)
            .await
            .map_err(|e| self.rpc_error(&format!("pausing container {id}"), e))?;
        Ok(())
    }

    /// Resumes the container's task.
    pub async fn resume(&self, id: &str) -> Result<()> {
        TasksClient::new(self.channel.clone())
            .resume(self.request(ResumeTaskRequest {
                container_id: id.to_string(),
            })?)
            .await
            .map_err(|e| self.rpc_error(&format!("resuming container {id}"), e))?;
        Ok(())
    }
}

fn code_name(c: Code) -> &'static str {
    match c {
        Code::NotFound => "not found",
        Code::Unavailable => "unavailable",
        Code::PermissionDenied => "permission denied",
        Code::FailedPrecondition => "failed precondition",
        Code::Unimplemented => "not implemented",
        _ => "error",
    }
}

/// The upper and lower directories of an overlay mount's options. A snapshot with no upper
/// directory (a bind mount of a view, a read-only mount) has no changes to commit.
pub fn overlay_dirs(kind: &str, options: &[String]) -> Result<OverlayDirs> {
    if kind != "overlay" {
        bail!("a {kind:?} mount, not overlay: commit reads the changes from an overlay upper directory");
    }
    let mut lower = Vec::new();
    let mut upper = None;
    for o in options {
        if let Some(v) = o.strip_prefix("lowerdir=") {
            lower = v
                .split(':')
                .filter(|s| !s.is_empty())
                .map(PathBuf::from)
                .collect();
        } else if let Some(v) = o.strip_prefix("upperdir=") {
            upper = Some(PathBuf::from(v));
        }
    }
    let upper = upper.context("the overlay mount has no upperdir (a read-only snapshot)")?;
    Ok(OverlayDirs { lower, upper })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_give_upper_and_lowers() {
        let o: Vec<String> = [
            "index=off",
            "workdir=/s/3/work",
            "upperdir=/s/3/fs",
            "lowerdir=/s/2/fs:/s/1/fs",
        ]
        .map(String::from)
        .to_vec();
        let d = overlay_dirs("overlay", &o).unwrap();
        assert_eq!(d.upper, PathBuf::from("/s/3/fs"));
        assert_eq!(
            d.lower,
            vec![PathBuf::from("/s/2/fs"), PathBuf::from("/s/1/fs")]
        );
        let e = overlay_dirs("bind", &o).unwrap_err();
        assert!(e.to_string().contains("not overlay"), "{e}");
        let e = overlay_dirs("overlay", &o[3..]).unwrap_err();
        assert!(e.to_string().contains("no upperdir"), "{e}");
    }
}
