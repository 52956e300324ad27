//! Integration tests: the real sloguard binary against real services on loopback.
