//! Run-local variables (Trio's `RunVar`): like thread-locals, but scoped
//! to one run, so state does not leak between runs on the same thread.
//!
//! A `RunVar` is declared as a `static` and identified by its address; each
//! run keeps its own value in a map that is dropped with the run.

use crate::core::runtime;
use crate::error::{Error, ErrorKind, Result};
use std::any::Any;
use std::fmt;
use std::marker::PhantomData;

/// A variable with one value per run.
///
/// ```
/// use trio::lowlevel::RunVar;
/// static REQUESTS: RunVar<u32> = RunVar::with_default("requests", || 0);
///
/// trio::run(async {
///     REQUESTS.set(REQUESTS.get()? + 1)?;
///     assert_eq!(REQUESTS.get()?, 1);
///     Ok(())
/// })
/// .unwrap();
/// // A new run starts fresh.
/// trio::run(async { Ok(assert_eq!(REQUESTS.get()?, 0)) }).unwrap();
/// ```
pub struct RunVar<T: 'static> {
    name: &'static str,
    default: Option<fn() -> T>,
    _marker: PhantomData<fn() -> T>,
}

impl<T: 'static> RunVar<T> {
    /// A variable with no default: `get` fails until it is set.
    pub const fn new(name: &'static str) -> Self {
        RunVar {
            name,
            default: None,
            _marker: PhantomData,
        }
    }

    /// A variable whose value starts as `default()` in each run.
    pub const fn with_default(name: &'static str, default: fn() -> T) -> Self {
        RunVar {
            name,
            default: Some(default),
            _marker: PhantomData,
        }
    }

    fn key(&'static self) -> usize {
        self as *const Self as usize
    }

    /// Runs `f` on the value, initialising it from the default if needed.
    /// (`f` may use other run variables, or this one's `get`, which then
    /// sees it unset: the value is lent out while `f` runs.)
    pub fn with<R>(&'static self, f: impl FnOnce(&mut T) -> R) -> Result<R> {
        let rt = runtime::current()?;
        let taken = rt.run_vars.borrow_mut().remove(&self.key());
        let boxed: Box<dyn Any> = match taken {
            Some(b) => b,
            None => match self.default {
                Some(default) => Box::new(default()),
                None => {
                    return Err(Error::new(
                        ErrorKind::Usage,
                        format!("run variable {:?} has no value in this run", self.name),
                    ));
                }
            },
        };
        // Put the value back even if `f` panics.
        struct PutBack<'a> {
            vars: &'a std::cell::RefCell<std::collections::HashMap<usize, Box<dyn Any>>>,
            key: usize,
            value: Option<Box<dyn Any>>,
        }
        impl Drop for PutBack<'_> {
            fn drop(&mut self) {
                if let Some(v) = self.value.take() {
                    self.vars.borrow_mut().insert(self.key, v);
                }
            }
        }
        let mut slot = PutBack {
            vars: &rt.run_vars,
            key: self.key(),
            value: Some(boxed),
        };
        match slot.value.as_mut().and_then(|b| b.downcast_mut::<T>()) {
            Some(value) => Ok(f(value)),
            None => Err(Error::usage("a RunVar's slot held another type")),
        }
    }

    /// A clone of the value.
    pub fn get(&'static self) -> Result<T>
    where
        T: Clone,
    {
        self.with(|v| v.clone())
    }

    /// Sets the value, returning the previous one if there was one.
    pub fn set(&'static self, value: T) -> Result<Option<T>> {
        let rt = runtime::current()?;
        let old = rt
            .run_vars
            .borrow_mut()
            .insert(self.key(), Box::new(value) as Box<dyn Any>);
        Ok(old.and_then(|b| b.downcast::<T>().ok()).map(|b| *b))
    }

    /// Removes the value (back to the default, or unset).
    pub fn reset(&'static self) -> Result<Option<T>> {
        let rt = runtime::current()?;
        let old = rt.run_vars.borrow_mut().remove(&self.key());
        Ok(old.and_then(|b| b.downcast::<T>().ok()).map(|b| *b))
    }
}

impl<T> fmt::Debug for RunVar<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RunVar").field("name", &self.name).finish()
    }
}
