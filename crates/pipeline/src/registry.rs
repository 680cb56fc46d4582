//! The explicit list of component factories a binary offers.
//!
//! No registration magic: the binary builds one `Registry` in one function, so what exists is
//! what that function lists.

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::component::{Factory, Kind};

/// Factories by kind and type name.
#[derive(Default, Clone)]
pub struct Registry {
    factories: BTreeMap<(Kind, &'static str), Arc<dyn Factory>>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a factory; a second factory of the same kind and type replaces the first.
    pub fn register(&mut self, factory: impl Factory + 'static) -> &mut Registry {
        self.factories.insert((factory.kind(), factory.type_name()), Arc::new(factory));
        self
    }

    /// The factory for `type_name` among components of `kind`.
    pub fn get(&self, kind: Kind, type_name: &str) -> Option<&Arc<dyn Factory>> {
        self.factories.iter().find(|((k, t), _)| *k == kind && *t == type_name).map(|(_, f)| f)
    }

    /// The type names of `kind`, sorted.
    pub fn type_names(&self, kind: Kind) -> Vec<&'static str> {
        self.factories.keys().filter(|(k, _)| *k == kind).map(|(_, t)| *t).collect()
    }

    /// Every factory, ordered by kind then type.
    pub fn iter(&self) -> impl Iterator<Item = &Arc<dyn Factory>> {
        self.factories.values()
    }
}
