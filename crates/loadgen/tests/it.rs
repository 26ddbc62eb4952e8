//! The load tool's integration tests, one binary (one link): each module runs the real server
//! in-process and the tool's modes against it.

#[path = "it/edge_load.rs"]
mod edge_load;
#[path = "it/end_to_end.rs"]
mod end_to_end;
#[path = "it/server.rs"]
mod server;
#[path = "it/whep_load.rs"]
mod whep_load;
