//! A Q-network in burn: build it from a config, read its Q-values on the
//! backend and on the fast host copy, save it as a checkpoint and load it back.
//!
//! `cargo run --release -p rlhf-model --example qnetwork_checkpoint`

use burn::tensor::{Tensor, TensorData};
use rlhf_model::backend::{CpuBackend, cpu_device};
use rlhf_model::checkpoint::{self, CheckpointInfo, Expectation};
use rlhf_model::{Activation, QNetworkConfig};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let device = cpu_device();
    let config = QNetworkConfig::new(4, 2).with_hidden(vec![64, 64]).with_activation(Activation::Relu);
    let network = config.init::<CpuBackend>(&device, 7);

    let obs = [0.01f32, -0.2, 0.03, 0.4];
    let q = network.forward(Tensor::<CpuBackend, 2>::from_data(TensorData::new(obs.to_vec(), [1, 4]), &device));
    println!("Q on the backend: {:?}", q.into_data().to_vec::<f32>()?);
    let mut host = network.to_host()?;
    let greedy = host.greedy_action(&obs)?;
    println!("Q on the host:    {:?} (greedy action {greedy})", host.q_values(&obs)?);

    let dir = std::env::temp_dir().join("rlhf-example-qnetwork");
    let info = CheckpointInfo {
        env_id: "CartPole-v1".into(),
        step: 0,
        backend: "flex".into(),
        run_config: serde_json::json!({ "note": "an untrained network" }),
    };
    checkpoint::save(&dir, &network, &config, info)?;
    let expected = Expectation { env_id: "CartPole-v1", obs_dim: 4, n_actions: 2 };
    let (loaded, meta) = checkpoint::load::<CpuBackend>(&dir, &expected, &device)?;
    let loaded_q = loaded.to_host()?.q_values(&obs)?.to_vec();
    assert_eq!(loaded_q, host.q_values(&obs)?);
    println!("saved and loaded {} (step {}): the same Q-values", dir.display(), meta.step);
    Ok(())
}
