//! Containers through the CRI, as kubelet runs a DaemonSet's pod: the
//! `CreateContainer`/`StartContainer`/`StopContainer`/`RemoveContainer`
//! messages (field numbers of `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`,
//! only the fields tests set) and [`CriClient`] calls around them.

#![allow(dead_code)]

use super::cri_client::CriClient;
use super::cri_client::proto::PodSandboxConfig;

pub mod proto {
    use super::PodSandboxConfig;

    /// `MountPropagation`.
    pub const PROPAGATION_PRIVATE: i32 = 0;
    pub const PROPAGATION_HOST_TO_CONTAINER: i32 = 1;

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerMetadata {
        #[prost(string, tag = "1")]
        pub name: String,
        #[prost(uint32, tag = "2")]
        pub attempt: u32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ImageSpec {
        #[prost(string, tag = "1")]
        pub image: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Mount {
        #[prost(string, tag = "1")]
        pub container_path: String,
        #[prost(string, tag = "2")]
        pub host_path: String,
        #[prost(bool, tag = "3")]
        pub readonly: bool,
        #[prost(int32, tag = "5")]
        pub propagation: i32,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Capability {
        #[prost(string, repeated, tag = "1")]
        pub add_capabilities: Vec<String>,
        #[prost(string, repeated, tag = "2")]
        pub drop_capabilities: Vec<String>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Int64Value {
        #[prost(int64, tag = "1")]
        pub value: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxContainerSecurityContext {
        #[prost(message, optional, tag = "1")]
        pub capabilities: Option<Capability>,
        #[prost(bool, tag = "2")]
        pub privileged: bool,
        #[prost(message, optional, tag = "5")]
        pub run_as_user: Option<Int64Value>,
        #[prost(bool, tag = "7")]
        pub readonly_rootfs: bool,
        #[prost(bool, tag = "11")]
        pub no_new_privs: bool,
        #[prost(message, optional, tag = "12")]
        pub run_as_group: Option<Int64Value>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct LinuxContainerConfig {
        #[prost(message, optional, tag = "2")]
        pub security_context: Option<LinuxContainerSecurityContext>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerConfig {
        #[prost(message, optional, tag = "1")]
        pub metadata: Option<ContainerMetadata>,
        #[prost(message, optional, tag = "2")]
        pub image: Option<ImageSpec>,
        #[prost(string, repeated, tag = "3")]
        pub command: Vec<String>,
        #[prost(string, repeated, tag = "4")]
        pub args: Vec<String>,
        #[prost(message, repeated, tag = "7")]
        pub mounts: Vec<Mount>,
        #[prost(string, tag = "11")]
        pub log_path: String,
        #[prost(message, optional, tag = "15")]
        pub linux: Option<LinuxContainerConfig>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerRequest {
        #[prost(string, tag = "1")]
        pub pod_sandbox_id: String,
        #[prost(message, optional, tag = "2")]
        pub config: Option<ContainerConfig>,
        #[prost(message, optional, tag = "3")]
        pub sandbox_config: Option<PodSandboxConfig>,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct CreateContainerResponse {
        #[prost(string, tag = "1")]
        pub container_id: String,
    }

    /// Start and Remove take only the id.
    #[derive(Clone, PartialEq, prost::Message)]
    pub struct ContainerIdRequest {
        #[prost(string, tag = "1")]
        pub container_id: String,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct StopContainerRequest {
        #[prost(string, tag = "1")]
        pub container_id: String,
        #[prost(int64, tag = "2")]
        pub timeout: i64,
    }

    #[derive(Clone, PartialEq, prost::Message)]
    pub struct Empty {}
}

use proto::*;

/// What a DaemonSet's container spec says, in CRI terms.
pub struct ContainerSpec<'a> {
    pub name: &'a str,
    pub image: &'a str,
    /// The container's args (the image's entrypoint is kept: no command).
    pub args: Vec<String>,
    /// (host path, container path, read-only, propagation).
    pub mounts: Vec<(String, String, bool, i32)>,
    /// readOnlyRootFilesystem, `capabilities: drop: [ALL]`, runAsUser 0,
    /// allowPrivilegeEscalation false: the DaemonSet's securityContext.
    pub locked_down: bool,
}

impl CriClient {
    /// `CreateContainer` then `StartContainer` in pod `pod` (created with
    /// `sandbox_config`); returns the container id. Its output goes to
    /// `<pod log directory>/<name>.log`.
    pub fn run_container(
        &mut self,
        pod: &str,
        sandbox_config: &PodSandboxConfig,
        spec: &ContainerSpec,
    ) -> Result<String, String> {
        let security = spec.locked_down.then(|| LinuxContainerSecurityContext {
            capabilities: Some(Capability {
                add_capabilities: Vec::new(),
                drop_capabilities: vec!["ALL".into()],
            }),
            privileged: false,
            run_as_user: Some(Int64Value { value: 0 }),
            readonly_rootfs: true,
            no_new_privs: true,
            run_as_group: Some(Int64Value { value: 0 }),
        });
        let config = ContainerConfig {
            metadata: Some(ContainerMetadata {
                name: spec.name.into(),
                attempt: 0,
            }),
            image: Some(ImageSpec {
                image: spec.image.into(),
            }),
            command: Vec::new(),
            args: spec.args.clone(),
            mounts: spec
                .mounts
                .iter()
                .map(|(host, ctr, ro, prop)| Mount {
                    container_path: ctr.clone(),
                    host_path: host.clone(),
                    readonly: *ro,
                    propagation: *prop,
                })
                .collect(),
            log_path: format!("{}.log", spec.name),
            linux: Some(LinuxContainerConfig {
                security_context: security,
            }),
        };
        let created: CreateContainerResponse = self.call(
            "CreateContainer",
            &CreateContainerRequest {
                pod_sandbox_id: pod.into(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            },
        )?;
        let id = created.container_id;
        let _: Empty = self.call(
            "StartContainer",
            &ContainerIdRequest {
                container_id: id.clone(),
            },
        )?;
        Ok(id)
    }

    /// `StopContainer` (SIGTERM, SIGKILL after `timeout_s`) then `RemoveContainer`.
    pub fn stop_and_remove_container(&mut self, id: &str, timeout_s: i64) -> Result<(), String> {
        let _: Empty = self.call(
            "StopContainer",
            &StopContainerRequest {
                container_id: id.into(),
                timeout: timeout_s,
            },
        )?;
        let _: Empty = self.call(
            "RemoveContainer",
            &ContainerIdRequest {
                container_id: id.into(),
            },
        )?;
        Ok(())
    }
}
