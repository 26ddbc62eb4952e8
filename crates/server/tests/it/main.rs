//! The server's integration tests, one binary (one link): each module drives the real
//! `ferrocast` binary or library against real clients (ffmpeg, ffprobe, rtmpdump, GStreamer),
//! a real Redis and a real S3 server, on 127.0.0.1 only.

#[allow(dead_code)]
mod common;

mod cli;
mod cluster;
mod cluster_auth;
mod dash;
mod edge;
mod edge_lock;
mod failover;
mod grafana;
mod hostile;
mod http_flood;
mod http_push;
mod interop;
mod llhls;
mod players;
mod push;
mod recording;
mod restart;
mod rtmp_flood;
mod secrets;
mod truncated;
mod webrtc;
mod whep_auto;
mod whip;
