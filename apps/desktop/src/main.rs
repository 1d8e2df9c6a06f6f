//! desktop-search: semantic search over a folder in a window. egui renders through wgpu on a
//! device created with wgbert's features and limits (`wgbert::runtime::device_descriptor`),
//! and wgbert embeds on that same device and queue from a worker thread.
//!
//! cargo run --release -p desktop-search -- --folder DIR --model DIR|ID [--mlm-model DIR|ID]

mod app;
mod corpus;
mod script;
mod worker;

use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use eframe::{egui, egui_wgpu};
use wgbert::ops::DType;
use wgbert::runtime::Gpu;

const USAGE: &str = "\
usage: desktop-search [--folder DIR] [--model DIR|ID] [--mlm-model DIR|ID] [--dtype f16|f32]
                      [--offline] [--size WxH] [--script FILE] [--script-timeout SECONDS]

  --folder DIR        index this folder at start (else pick one in the window)
  --model DIR|ID      the embedding model: a local directory, or a hub id (downloaded once)
  --mlm-model DIR|ID  the masked-language model of the Fill mask tab
  --dtype f16|f32     storage precision (default: f16 where the device has it)
  --offline           hub ids from the local cache only
  --size WxH          the window's inner size in pixels (default 1100x720)
  --script FILE       play a script against the window, print a JSON report, exit
                      (see the app's README section)
  --script-timeout S  fail the script after S seconds (default 600)";

struct Args {
    folder: Option<String>,
    model: String,
    mlm_model: String,
    dtype: Option<DType>,
    offline: bool,
    size: [f32; 2],
    script: Option<String>,
    script_timeout: Duration,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        folder: None,
        model: "nomic-ai/modernbert-embed-base".into(),
        mlm_model: "answerdotai/ModernBERT-base".into(),
        dtype: None,
        offline: false,
        size: [1100.0, 720.0],
        script: None,
        script_timeout: Duration::from_secs(600),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--folder" => args.folder = Some(value()?),
            "--model" => args.model = value()?,
            "--mlm-model" => args.mlm_model = value()?,
            "--dtype" => {
                args.dtype = Some(match value()?.as_str() {
                    "f16" => DType::F16,
                    "f32" => DType::F32,
                    other => return Err(format!("--dtype {other}: use f16 or f32")),
                })
            }
            "--offline" => args.offline = true,
            "--size" => {
                let v = value()?;
                let (w, h) = v
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse::<u16>().ok()?, h.parse::<u16>().ok()?)))
                    .filter(|&(w, h)| w >= 320 && h >= 240)
                    .ok_or_else(|| format!("--size {v}: use WxH, at least 320x240"))?;
                args.size = [f32::from(w), f32::from(h)];
            }
            "--script" => args.script = Some(value()?),
            "--script-timeout" => {
                let v = value()?;
                let s: u64 = v
                    .parse()
                    .map_err(|_| format!("--script-timeout {v}: a number of seconds"))?;
                args.script_timeout = Duration::from_secs(s);
            }
            "-h" | "--help" => return Err(String::new()),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(args)
}

/// eframe's wgpu setup, asking the adapter for egui's own needs merged with wgbert's
/// (features and limits for its fastest kernels), so that one device serves both.
fn wgpu_options() -> egui_wgpu::WgpuConfiguration {
    let mut setup = egui_wgpu::WgpuSetupCreateNew::without_display_handle();
    let egui_needs = setup.device_descriptor.clone();
    setup.device_descriptor = Arc::new(move |adapter: &wgpu::Adapter| {
        let mut host = egui_needs(adapter);
        host.label = Some("desktop-search");
        wgbert::runtime::device_descriptor(adapter, &host)
    });
    egui_wgpu::WgpuConfiguration {
        wgpu_setup: egui_wgpu::WgpuSetup::CreateNew(setup),
        ..Default::default()
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) if e.is_empty() => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("desktop-search: {e}\n\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let script = match &args.script {
        None => None,
        Some(path) => match std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read script {path}: {e}"))
            .and_then(|t| script::parse(&t))
        {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("desktop-search: {e}");
                return ExitCode::from(2);
            }
        },
    };
    let scripted = script.is_some();
    let outcome = Arc::new(Mutex::new(app::Outcome::default()));
    let settings = app::Settings {
        folder: args.folder.clone(),
        model: args.model.clone(),
        mlm_model: args.mlm_model.clone(),
        script,
        script_timeout: args.script_timeout,
    };
    let options = eframe::NativeOptions {
        viewport: egui::ViewportBuilder::default()
            .with_title("desktop-search")
            .with_inner_size(args.size)
            .with_resizable(!scripted),
        renderer: eframe::Renderer::Wgpu,
        wgpu_options: wgpu_options(),
        ..Default::default()
    };
    let (dtype, offline) = (args.dtype, args.offline);
    let shared = outcome.clone();
    let run = eframe::run_native(
        "desktop-search",
        options,
        Box::new(move |cc| {
            let rs = cc
                .wgpu_render_state
                .as_ref()
                .ok_or("eframe started without its wgpu renderer")?;
            // The window's own device and queue, lent to wgbert.
            let gpu = Gpu::from_wgpu(rs.device.clone(), rs.queue.clone(), Some(&rs.adapter));
            // The host's callbacks stay the app's: it shows what they report, and tells
            // wgbert when the device is lost.
            let device_errors = Arc::new(Mutex::new(Vec::new()));
            let (lost_gpu, lost_list, lost_ctx) =
                (gpu.clone(), device_errors.clone(), cc.egui_ctx.clone());
            rs.device.set_device_lost_callback(move |reason, message| {
                let line = format!("the GPU device was lost ({reason:?}): {message}");
                lost_gpu.health().fail(line.clone());
                if let Ok(mut l) = lost_list.lock() {
                    l.push(line);
                }
                lost_ctx.request_repaint();
            });
            let (err_list, err_ctx) = (device_errors.clone(), cc.egui_ctx.clone());
            rs.device
                .on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
                    log::error!("uncaptured wgpu error: {e}");
                    if let Ok(mut l) = err_list.lock() {
                        l.push(format!("GPU error: {e}"));
                    }
                    err_ctx.request_repaint();
                }));
            let (job_tx, job_rx) = std::sync::mpsc::channel();
            let (reply_tx, reply_rx) = std::sync::mpsc::channel();
            let ctx = cc.egui_ctx.clone();
            worker::spawn(gpu.clone(), dtype, offline, job_rx, reply_tx, move || {
                ctx.request_repaint()
            })?;
            Ok(Box::new(app::App::new(
                settings,
                gpu,
                device_errors,
                job_tx,
                reply_rx,
                shared,
            )))
        }),
    );
    if let Err(e) = run {
        eprintln!("desktop-search: cannot open the window: {e}");
        return ExitCode::FAILURE;
    }
    if !scripted {
        return ExitCode::SUCCESS;
    }
    let Ok(outcome) = outcome.lock() else {
        eprintln!("desktop-search: the script's report is lost");
        return ExitCode::FAILURE;
    };
    if let Some(report) = &outcome.report {
        println!(
            "{}",
            serde_json::to_string_pretty(report).unwrap_or_default()
        );
    }
    match (&outcome.error, &outcome.report) {
        (Some(e), _) => {
            eprintln!("desktop-search: script failed: {e}");
            ExitCode::FAILURE
        }
        (None, None) => {
            eprintln!("desktop-search: the window closed before the script ended");
            ExitCode::FAILURE
        }
        (None, Some(_)) => ExitCode::SUCCESS,
    }
}
