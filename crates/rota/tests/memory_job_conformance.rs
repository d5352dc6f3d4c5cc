//! The in-memory broker passes the job store conformance suite.

rota::job_conformance_tests!(async { ((), rota::memory::MemoryBroker::new()) });
