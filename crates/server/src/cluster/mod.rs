//! Moving streams between the nodes of a cluster: the gateway's routing, the publish relay
//! (edge → gateway → encoder) and the play relay (edge ← encoder) with its jitter buffer.
pub mod gateway;
pub mod jitter;
pub mod pull;
pub mod relay;
