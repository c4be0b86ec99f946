//! Automatic certificates over ACME (RFC 8555): for now the answers to a CA's challenges.

pub mod challenge;
