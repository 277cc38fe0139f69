//! Nacos 2.x gRPC spoken by hand over a plain socket, just far enough to hold a listening
//! connection: HTTP/2 frames with literal header blocks, one bidirectional stream and a
//! unary listen request. The fan-out waits on thousands of these from one thread, as it
//! does for long polls; a tonic client per connection (a channel, its buffer task and its
//! HTTP/2 task) would cost the shared two cores more than the node being measured.

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, ensure, Context as _};
use cairn_server::api::grpc::proto::Payload;
use prost::Message as _;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpSocket, TcpStream};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0x0;
const HEADERS: u8 = 0x1;
const SETTINGS: u8 = 0x4;
const PING: u8 = 0x6;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const STREAM_PATH: &str = "/BiRequestStream/requestBiStream";
const UNARY_PATH: &str = "/Request/request";

/// What a push carries that nothing else the node sends on a set-up connection does.
pub const PUSH_MARK: &[u8] = b"ConfigChangeNotifyRequest";

/// Connects from `source`, sets up a Nacos connection and listens to `data_id` (group
/// `bench`, public namespace) at `md5`. Returns the socket once the node has accepted
/// the listen and finished answering it, so the next thing it sends is a push.
pub async fn listen(
    grpc: SocketAddr,
    source: IpAddr,
    token: &str,
    data_id: &str,
    md5: &str,
) -> anyhow::Result<std::net::TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let mut conn = Connection {
        stream: socket.connect(grpc).await?,
        read: Vec::with_capacity(1024),
        authority: grpc.to_string(),
    };
    conn.stream.set_nodelay(true)?;
    let mut out = PREFACE.to_vec();
    frame(&mut out, SETTINGS, 0, 0, &[]);
    conn.open(&mut out, 1, STREAM_PATH);
    let setup = Payload::json(
        "ConnectionSetupRequest",
        &json!({ "clientVersion": "cairn-bench", "labels": {} }),
    );
    message(&mut out, 1, 0, &setup);
    conn.stream.write_all(&out).await?;

    let mut listen = Payload::json(
        "ConfigBatchListenRequest",
        &json!({ "listen": true, "configListenContexts": [
            { "dataId": data_id, "group": "bench", "tenant": "", "md5": md5 }
        ]}),
    );
    if let Some(metadata) = listen.metadata.as_mut() {
        metadata
            .headers
            .insert("accessToken".into(), token.to_owned());
    }
    // The node registers the connection as the stream's first message arrives: a listen
    // that gets there first is told so (301), and is sent again.
    for attempt in 0..100u32 {
        let id = 3 + 2 * attempt;
        let mut out = Vec::new();
        conn.open(&mut out, id, UNARY_PATH);
        message(&mut out, id, END_STREAM, &listen);
        conn.stream.write_all(&out).await?;
        let answer = conn.unary_answer(id).await?;
        let body: Value = serde_json::from_slice(answer.body())?;
        if body["resultCode"] == 200 {
            return Ok(conn.stream.into_std()?);
        }
        ensure!(body["errorCode"] == 301, "the listen was refused: {body}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    bail!("a gRPC connection never got to listen")
}

struct Connection {
    stream: TcpStream,
    read: Vec<u8>,
    authority: String,
}

impl Connection {
    /// Appends the HEADERS frame that opens gRPC stream `id` to `path`.
    fn open(&self, out: &mut Vec<u8>, id: u32, path: &str) {
        // :method POST and :scheme http from HPACK's static table (entries 3 and 6); the
        // rest as literals without indexing, so no table state is kept on either side.
        let mut block = vec![0x83, 0x86];
        literal(&mut block, Some(4), ":path", path);
        literal(&mut block, Some(1), ":authority", &self.authority);
        literal(&mut block, None, "content-type", "application/grpc");
        literal(&mut block, None, "te", "trailers");
        frame(out, HEADERS, END_HEADERS, id, &block);
    }

    /// Reads frames until unary stream `id` ends; returns the message it carried.
    /// Settings and pings from the node are acknowledged on the way.
    async fn unary_answer(&mut self, id: u32) -> anyhow::Result<Payload> {
        let mut answer = None;
        loop {
            let (kind, flags, stream, body) = self.next_frame().await?;
            match kind {
                SETTINGS if flags & ACK == 0 => {
                    let mut out = Vec::new();
                    frame(&mut out, SETTINGS, ACK, 0, &[]);
                    self.stream.write_all(&out).await?;
                }
                PING if flags & ACK == 0 => {
                    let mut out = Vec::new();
                    frame(&mut out, PING, ACK, 0, &body);
                    self.stream.write_all(&out).await?;
                }
                DATA if stream == id => {
                    ensure!(body.len() >= 5, "a gRPC message without its prefix");
                    answer = Some(Payload::decode(&body[5..])?);
                }
                _ => {}
            }
            if stream == id && flags & END_STREAM != 0 {
                return answer.context("the listen ended without an answer");
            }
        }
    }

    /// The next frame: its type, flags, stream id and payload.
    async fn next_frame(&mut self) -> anyhow::Result<(u8, u8, u32, Vec<u8>)> {
        loop {
            if self.read.len() >= 9 {
                let len = u32::from_be_bytes([0, self.read[0], self.read[1], self.read[2]]);
                let end = 9 + len as usize;
                if self.read.len() >= end {
                    let (kind, flags) = (self.read[3], self.read[4]);
                    let stream = u32::from_be_bytes(self.read[5..9].try_into()?) & 0x7fff_ffff;
                    let body = self.read[9..end].to_vec();
                    self.read.drain(..end);
                    return Ok((kind, flags, stream, body));
                }
            }
            let mut buf = [0u8; 1024];
            let n = self.stream.read(&mut buf).await?;
            ensure!(n > 0, "the node closed the gRPC connection");
            self.read.extend_from_slice(&buf[..n]);
        }
    }
}

/// Appends one HTTP/2 frame.
fn frame(out: &mut Vec<u8>, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes()[1..]);
    out.push(kind);
    out.push(flags);
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
}

/// Appends a DATA frame holding one length-prefixed gRPC message.
fn message(out: &mut Vec<u8>, stream: u32, flags: u8, payload: &Payload) {
    let bytes = payload.encode_to_vec();
    let mut body = Vec::with_capacity(5 + bytes.len());
    body.push(0);
    body.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
    body.extend_from_slice(&bytes);
    frame(out, DATA, flags, stream, &body);
}

/// Appends an HPACK literal header field without indexing: by static-table name index
/// when given, else with the name spelled out. Names and values here are short enough
/// for a one-byte length.
fn literal(block: &mut Vec<u8>, index: Option<u8>, name: &str, value: &str) {
    debug_assert!(name.len() < 127 && value.len() < 127);
    match index {
        Some(i) => block.push(i),
        None => {
            block.push(0);
            block.push(name.len() as u8);
            block.extend_from_slice(name.as_bytes());
        }
    }
    block.push(value.len() as u8);
    block.extend_from_slice(value.as_bytes());
}
