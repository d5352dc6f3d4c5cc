//! The in-memory backend passes the conformance suites of calls, jobs and
//! schedules.

use rota_memory::MemoryBroker;

rota_conformance::rpc_tests!(async { ((), MemoryBroker::new()) });
rota_conformance::jobs_tests!(|clock| async move { ((), MemoryBroker::with_clock(clock)) });
rota_conformance::schedules_tests!(async { ((), MemoryBroker::new()) });
