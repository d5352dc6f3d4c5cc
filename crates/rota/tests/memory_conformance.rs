//! The in-memory broker passes the conformance suite.

rota::conformance_tests!(async { ((), rota::memory::MemoryBroker::new()) });
