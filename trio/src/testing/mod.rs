//! Tools for testing code that uses `trio`: a virtual clock that skips idle
//! time, and a way to wait until every other task is blocked.

mod mock_clock;

pub use crate::core::park::wait_all_tasks_blocked;
pub use mock_clock::MockClock;
