//! What a plugin may use: time, fuel, memory, output.

use std::time::Duration;

use wasmtime::ResourceLimiter;

/// The limits of one plugin run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time of one run (epoch interruption, checked every 10 ms).
    pub deadline: Duration,
    /// Fuel of one run (about one unit per WebAssembly instruction).
    pub fuel: u64,
    /// Linear memory, in bytes.
    pub memory: u64,
    /// Bytes kept of stdout and of stderr each; writing more stops the plugin.
    pub output: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            deadline: Duration::from_secs(10),
            fuel: 10_000_000_000,
            memory: 256 << 20,
            output: 1 << 20,
        }
    }
}

/// How often the epoch advances while a plugin runs.
pub(crate) const TICK: Duration = Duration::from_millis(10);

impl Limits {
    /// The deadline in epoch ticks (at least one).
    pub(crate) fn deadline_ticks(&self) -> u64 {
        (self.deadline.as_micros().div_ceil(TICK.as_micros()) as u64).max(1)
    }
}

/// The store's resource limiter: linear memory and tables bounded, one instance; remembers
/// whether the memory limit was what stopped the plugin.
#[derive(Debug)]
pub(crate) struct Budget {
    memory: u64,
    pub(crate) memory_hit: bool,
}

/// Table elements one plugin may have (function tables of ordinary programs are far smaller).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;

impl Budget {
    pub(crate) fn new(limits: &Limits) -> Budget {
        Budget {
            memory: limits.memory,
            memory_hit: false,
        }
    }
}

impl ResourceLimiter for Budget {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        if desired as u64 > self.memory {
            self.memory_hit = true;
            // An error (not `false`): the plugin stops here instead of seeing `memory.grow`
            // fail and carrying on, or aborting with a less clear trap.
            wasmtime::bail!(
                "memory limit of {} bytes reached (asked for {desired})",
                self.memory
            );
        }
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        1
    }

    fn memories(&self) -> usize {
        1
    }

    fn tables(&self) -> usize {
        4
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_whole_ticks_and_never_zero() {
        let l = Limits {
            deadline: Duration::from_millis(25),
            ..Limits::default()
        };
        assert_eq!(l.deadline_ticks(), 3);
        let l = Limits {
            deadline: Duration::ZERO,
            ..Limits::default()
        };
        assert_eq!(l.deadline_ticks(), 1);
    }

    #[test]
    fn growing_past_the_memory_limit_is_an_error_and_remembered() {
        let mut b = Budget::new(&Limits {
            memory: 1 << 20,
            ..Limits::default()
        });
        assert!(b.memory_growing(0, 1 << 20, None).unwrap());
        assert!(!b.memory_hit);
        assert!(b.memory_growing(1 << 20, 2 << 20, None).is_err());
        assert!(b.memory_hit);
    }
}
