//! Plugin loaders: programs whose configuration decides which shared
//! objects they `dlopen`.

use vexxy_rootfs::RootFs;

use crate::{nginx::NginxLoader, ElfGraph};

/// What a loader's configuration says about one plugin file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginState {
    /// The configuration loads it.
    Loaded {
        /// Where and how, e.g. `load_module … in /etc/nginx/…:1`.
        reason: String,
    },
    /// The configuration does not load it.
    NotLoaded {
        /// Why we think so, naming the configuration files read.
        reason: String,
    },
}

/// A program that loads plugins according to its configuration.
pub trait PluginLoader: std::fmt::Debug + Send + Sync {
    /// A short name for reports, e.g. `nginx`.
    fn name(&self) -> &str;

    /// Canonical image paths of the plugin files this loader knows, with
    /// what its configuration says about each. Nothing when the program's
    /// configuration is absent or unusable.
    fn plugins(&self, root: &RootFs, graph: &ElfGraph) -> Vec<(String, PluginState)>;
}

/// The loaders vexxy knows: nginx dynamic modules.
pub fn builtin_loaders() -> Vec<Box<dyn PluginLoader>> {
    vec![Box::new(NginxLoader::default())]
}
