//! A terminal progress bar fed from the engine's counters.

use std::io::IsTerminal;
use std::sync::Arc;
use std::time::Duration;

use chom_repo::Progress;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// A running bar; `finish` clears it.
pub struct Bar {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

/// Whether progress should be drawn: stderr is a terminal and output is for people.
pub fn wanted(json: bool, quiet: bool) -> bool {
    !json && !quiet && std::io::stderr().is_terminal()
}

impl Bar {
    /// Start drawing `progress` with a verb (`backing up`) if `enabled`.
    pub fn start(progress: &Arc<Progress>, verb: &'static str, enabled: bool) -> Self {
        if !enabled {
            return Bar {
                stop: None,
                task: None,
            };
        }
        let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
        let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel();
        let progress = progress.clone();
        let task = tokio::spawn(async move {
            let with_total = ProgressStyle::with_template(
                "{msg} {wide_bar} {bytes}/{total_bytes} {binary_bytes_per_sec} ETA {eta}",
            )
            .expect("template");
            let without_total = ProgressStyle::with_template(
                "{msg} {spinner} {bytes} {binary_bytes_per_sec} {elapsed}",
            )
            .expect("template");
            bar.set_style(without_total.clone());
            loop {
                let s = progress.snapshot();
                match s.bytes_total {
                    Some(total) => {
                        bar.set_style(with_total.clone());
                        bar.set_length(total.max(s.bytes_done));
                    }
                    None => bar.set_style(without_total.clone()),
                }
                bar.set_position(s.bytes_done);
                let files = match s.files_total {
                    Some(t) => format!("{verb} {}/{} files", s.files_done, t),
                    None => format!("{verb} {} files", s.files_done),
                };
                bar.set_message(files);
                tokio::select! {
                    _ = &mut stop_rx => break,
                    _ = tokio::time::sleep(Duration::from_millis(150)) => {}
                }
            }
            bar.finish_and_clear();
        });
        Bar {
            stop: Some(stop_tx),
            task: Some(task),
        }
    }

    /// Stop and clear the bar.
    pub async fn finish(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}
