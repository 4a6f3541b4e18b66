//! How much memory a configuration may take, counted in bytes as it is built rather than in
//! nodes, so that one big anchored string repeated by aliases, `extends:`, `!reference`,
//! defaults or `parallel:` is refused before it is copied, not after.
//!
//! The count is a scalar's bytes plus a fixed charge per node. Ruby charges at least 40 bytes
//! per object (160 per small Hash) in `Gitlab::Utils::DeepSize`, and a file is allowed twice
//! GitLab's default `max_yaml_size_bytes` of 1 MB, so whatever GitLab accepts, Kiln accepts too
//! (instances that raised the setting have files up to about that).

use crate::error::{CompileError, Result};
use crate::value::{Map, Value};

/// Charged for every node besides its scalar bytes.
pub(crate) const NODE_BYTES: usize = 32;
/// One loaded file after aliases and merge keys.
pub(crate) const MAX_FILE_BYTES: usize = 2 << 20;
/// All loaded files together (the main file and its includes).
pub(crate) const MAX_LOADED_BYTES: usize = 8 << 20;
/// The configuration once `extends:`, `!reference`, defaults, `parallel:` and the global
/// variables have been copied into each job: the most a compile may hold.
pub(crate) const MAX_COMPILED_BYTES: usize = 64 << 20;

pub(crate) const TOO_BIG: &str = "The parsed YAML is too big";

/// A running count against a limit; the error is GitLab's `DataTooLargeError`.
pub(crate) struct Budget {
    used: usize,
    limit: usize,
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Budget {
        Budget { used: 0, limit }
    }

    pub(crate) fn charge(&mut self, bytes: usize) -> Result<()> {
        self.used = self.used.saturating_add(bytes);
        if self.used > self.limit {
            return Err(too_big());
        }
        Ok(())
    }

    pub(crate) fn used(&self) -> usize {
        self.used
    }
}

pub(crate) fn too_big() -> CompileError {
    CompileError::new("root", TOO_BIG)
}

/// The bytes `value` counts for, walked without copying.
pub(crate) fn size_of(value: &Value) -> usize {
    NODE_BYTES
        + match value {
            Value::Str(s) => s.len(),
            Value::Seq(items) | Value::Reference(items) => {
                items.iter().map(size_of).fold(0, usize::saturating_add)
            }
            Value::Map(map) => map_entries_size(map),
            _ => 0,
        }
}

/// The bytes a mapping counts for.
pub(crate) fn size_of_map(map: &Map) -> usize {
    NODE_BYTES + map_entries_size(map)
}

fn map_entries_size(map: &Map) -> usize {
    map.iter()
        .map(|(k, v)| k.len() + size_of(v))
        .fold(0, usize::saturating_add)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_bytes_and_nodes() {
        let value = Value::Seq(vec![Value::Str("abc".into()), Value::Int(1)]);
        assert_eq!(size_of(&value), 3 * NODE_BYTES + 3);
    }

    #[test]
    fn refuses_past_the_limit() {
        let mut budget = Budget::new(10);
        assert!(budget.charge(10).is_ok());
        assert_eq!(
            budget.charge(1).err().map(|e| e.message),
            Some(TOO_BIG.into())
        );
    }
}
