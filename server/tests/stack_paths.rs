//! The local stack in a relative run folder (`loadgen run --out runs/x`, and loadgen's default
//! `runs/<scenario>-<time>`): nginx reads a relative `-c` under its `-p` prefix, so the stack
//! must hand it absolute paths, or nginx never starts.

mod common;

use std::path::PathBuf;

#[tokio::test]
async fn a_relative_run_folder_starts_nginx() {
    // This binary's only test: it may move the process into a scratch folder, and name the run
    // folder from there.
    let scratch = std::env::temp_dir().join(format!("roomstorm-relative-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(&scratch).expect("a scratch folder");
    std::env::set_current_dir(&scratch).expect("into the scratch folder");
    let mut config = common::stack_config(1, &[]);
    config.run_dir = Some(PathBuf::from("runs/x/stack"));
    // Starting waits until nginx answers /healthz.
    let stack = common::start_stack_with(config).await;
    assert_eq!(stack.info().run_dir, scratch.join("runs/x/stack"));
    assert!(scratch.join("runs/x/stack/nginx.conf").is_file());
    stack.stop().await;
    let _ = std::fs::remove_dir_all(&scratch);
}
