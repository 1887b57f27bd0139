//! Moving a tokio program to trio (placeholder, being written).
