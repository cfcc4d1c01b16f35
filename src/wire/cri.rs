//! The few CRI `runtime.v1.RuntimeService` messages the monitor uses,
//! hand-written for `prost` (no protoc, no build script). Field numbers are
//! those of `k8s.io/cri-api/pkg/apis/runtime/v1/api.proto`; unknown fields in
//! responses are skipped by prost, so newer runtimes stay compatible.

use prost::Message;

/// `/runtime.v1.RuntimeService/ListPodSandbox`.
pub const LIST_POD_SANDBOX: &str = "/runtime.v1.RuntimeService/ListPodSandbox";

/// `PodSandboxState`.
pub const SANDBOX_READY: i32 = 0;
pub const SANDBOX_NOTREADY: i32 = 1;

#[derive(Clone, PartialEq, Message)]
pub struct PodSandboxStateValue {
    #[prost(int32, tag = "1")]
    pub state: i32,
}

#[derive(Clone, PartialEq, Message)]
pub struct PodSandboxFilter {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub state: Option<PodSandboxStateValue>,
    #[prost(map = "string, string", tag = "3")]
    pub label_selector: std::collections::HashMap<String, String>,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListPodSandboxRequest {
    #[prost(message, optional, tag = "1")]
    pub filter: Option<PodSandboxFilter>,
}

#[derive(Clone, PartialEq, Message)]
pub struct PodSandboxMetadata {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub uid: String,
    #[prost(string, tag = "3")]
    pub namespace: String,
    #[prost(uint32, tag = "4")]
    pub attempt: u32,
}

#[derive(Clone, PartialEq, Message)]
pub struct PodSandbox {
    #[prost(string, tag = "1")]
    pub id: String,
    #[prost(message, optional, tag = "2")]
    pub metadata: Option<PodSandboxMetadata>,
    #[prost(int32, tag = "3")]
    pub state: i32,
    #[prost(int64, tag = "4")]
    pub created_at: i64,
    #[prost(map = "string, string", tag = "5")]
    pub labels: std::collections::HashMap<String, String>,
    #[prost(map = "string, string", tag = "6")]
    pub annotations: std::collections::HashMap<String, String>,
    #[prost(string, tag = "7")]
    pub runtime_handler: String,
}

#[derive(Clone, PartialEq, Message)]
pub struct ListPodSandboxResponse {
    #[prost(message, repeated, tag = "1")]
    pub items: Vec<PodSandbox>,
}

/// The encoded request for every READY pod sandbox.
pub fn list_ready_request() -> Vec<u8> {
    ListPodSandboxRequest {
        filter: Some(PodSandboxFilter {
            state: Some(PodSandboxStateValue {
                state: SANDBOX_READY,
            }),
            ..Default::default()
        }),
    }
    .encode_to_vec()
}

/// One listed pod: what the monitor uses of a `PodSandbox`.
#[derive(Clone, Debug, PartialEq)]
pub struct ListedPod {
    pub id: String,
    pub metadata: PodSandboxMetadata,
    pub runtime_handler: String,
}

/// The pods (with metadata) of an encoded `ListPodSandboxResponse`.
pub fn parse_list_response(bytes: &[u8]) -> Result<Vec<ListedPod>, prost::DecodeError> {
    let resp = ListPodSandboxResponse::decode(bytes)?;
    Ok(resp
        .items
        .into_iter()
        .filter_map(|p| {
            Some(ListedPod {
                id: p.id,
                metadata: p.metadata?,
                runtime_handler: p.runtime_handler,
            })
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_bytes_are_the_expected_wire_form() {
        // filter (1) { state (2) { state (1): 0 } }: proto3 omits the zero,
        // leaving an empty PodSandboxStateValue, which still means "READY set".
        assert_eq!(list_ready_request(), vec![0x0a, 0x02, 0x12, 0x00]);
        let notready = ListPodSandboxRequest {
            filter: Some(PodSandboxFilter {
                id: "ab".into(),
                state: Some(PodSandboxStateValue {
                    state: SANDBOX_NOTREADY,
                }),
                ..Default::default()
            }),
        };
        assert_eq!(
            notready.encode_to_vec(),
            vec![0x0a, 0x08, 0x0a, 0x02, b'a', b'b', 0x12, 0x02, 0x08, 0x01]
        );
    }

    #[test]
    fn response_decoding_known_bytes() {
        // Built by hand: items { id: "s1" metadata { name: "p" uid: "u" namespace: "n" attempt: 2 }
        // state: 0 runtime_handler: "kata" } plus an unknown field 99 that must be skipped.
        let meta = [0x0a, 1, b'p', 0x12, 1, b'u', 0x1a, 1, b'n', 0x20, 2];
        let mut item = vec![0x0a, 2, b's', b'1', 0x12, meta.len() as u8];
        item.extend_from_slice(&meta);
        item.extend_from_slice(&[0x3a, 4, b'k', b'a', b't', b'a']);
        item.extend_from_slice(&[0x98, 0x06, 0x01]); // field 99, varint 1
        let mut bytes = vec![0x0a, item.len() as u8];
        bytes.extend_from_slice(&item);
        let got = parse_list_response(&bytes).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].id, "s1");
        assert_eq!(got[0].runtime_handler, "kata");
        assert_eq!(
            got[0].metadata,
            PodSandboxMetadata {
                name: "p".into(),
                uid: "u".into(),
                namespace: "n".into(),
                attempt: 2
            }
        );
        let full = ListPodSandboxResponse::decode(&bytes[..]).unwrap();
        assert_eq!(full.items[0].runtime_handler, "kata");
        assert!(parse_list_response(&[0x0a, 0x05, 0x01]).is_err());
        assert!(parse_list_response(&[]).unwrap().is_empty());
    }
}
