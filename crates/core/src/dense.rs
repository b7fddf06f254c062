//! PyLate's chain of Dense modules: `y = act(x W^T + b)`, plus a residual when asked.

use candle_core::{Device, Tensor};

use crate::config::{read_json, Fields};
use crate::error::{Error, Result};
use crate::models::layers::activate;
use crate::models::{Activation, Linear};
use crate::source::{join, Source};
use crate::weights::WeightStore;

enum Residual {
    None,
    /// `in == out`: the input itself is added.
    Input,
    /// `in != out`: a bias-free projection of the input is added.
    Projected(Linear),
}

struct Dense {
    linear: Linear,
    activation: Activation,
    residual: Residual,
}

/// The Dense modules of a model, applied in order.
pub(crate) struct DenseChain {
    layers: Vec<Dense>,
    out_features: usize,
}

impl DenseChain {
    pub(crate) fn load(
        source: &Source,
        dirs: &[String],
        hidden: usize,
        device: &Device,
    ) -> Result<Self> {
        let mut layers = Vec::with_capacity(dirs.len());
        let mut width = hidden;
        for dir in dirs {
            let config = DenseConfig::read(source, dir)?;
            let config_file = join(dir, "config.json");
            if config.in_features != width {
                let what = if layers.is_empty() {
                    format!("the backbone's hidden_size {width}")
                } else {
                    format!("the previous Dense's out_features {width}")
                };
                return Err(Error::config(
                    config_file,
                    format!("in_features {} does not match {what}", config.in_features),
                ));
            }
            let (file, blob) = source.read_weights(dir, "the Dense layer's weights")?;
            let store = WeightStore::parse(&file, &blob, device)?;
            let linear = Linear::load(
                &store,
                "linear",
                config.in_features,
                config.out_features,
                config.bias,
            )?;
            let residual = if !config.use_residual {
                Residual::None
            } else if config.in_features == config.out_features {
                Residual::Input
            } else {
                let weight = store.get(
                    "residual.weight",
                    &[config.out_features, config.in_features],
                )?;
                let bias = store.get_optional("residual.bias", &[config.out_features])?;
                Residual::Projected(Linear::new(weight, bias)?)
            };
            layers.push(Dense {
                linear,
                activation: config.activation,
                residual,
            });
            width = config.out_features;
        }
        Ok(DenseChain {
            layers,
            out_features: width,
        })
    }

    /// Width of the output rows.
    pub(crate) fn out_features(&self) -> usize {
        self.out_features
    }

    /// Applies the chain to rows `[N, hidden]`.
    pub(crate) fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let mut x = x.clone();
        for layer in &self.layers {
            let y = activate(&layer.linear.forward(&x)?, layer.activation)?;
            x = match &layer.residual {
                Residual::None => y,
                Residual::Input => (y + &x)?,
                Residual::Projected(p) => (y + p.forward(&x)?)?,
            };
        }
        Ok(x)
    }
}

/// One Dense module's `config.json`.
#[derive(Debug, Clone)]
pub(crate) struct DenseConfig {
    pub(crate) in_features: usize,
    pub(crate) out_features: usize,
    pub(crate) bias: bool,
    pub(crate) activation: Activation,
    pub(crate) use_residual: bool,
}

impl DenseConfig {
    pub(crate) fn read(source: &Source, dir: &str) -> Result<Self> {
        let file = join(dir, "config.json");
        let map = read_json(source, &file, "each Dense module has a config.json")?;
        let f = Fields::new(&file, &map);
        let activation = match f.opt_str("activation_function")? {
            Some(name) => Activation::from_torch_name(&file, name)?,
            // sentence-transformers' Dense defaults to Tanh.
            None => Activation::Tanh,
        };
        let in_features = f.usize("in_features")?;
        let out_features = f.usize("out_features")?;
        for (key, value) in [("in_features", in_features), ("out_features", out_features)] {
            if value == 0 {
                return Err(Error::config(
                    &file,
                    format!("`{key}` is 0; expected at least 1"),
                ));
            }
        }
        Ok(DenseConfig {
            in_features,
            out_features,
            bias: f.opt_bool("bias")?.unwrap_or(true),
            activation,
            use_residual: f.opt_bool("use_residual")?.unwrap_or(false),
        })
    }
}
