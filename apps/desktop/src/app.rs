//! The window: a Search tab (folder, model, index progress and cancel, query, ranked files)
//! and a Fill-mask tab, a status bar with the device and the frame clock, and the scripted
//! mode's player. All GPU work goes to the worker; the window only drains its replies.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eframe::egui;
use serde_json::{Value, json};
use wgbert::runtime::Gpu;

use crate::script::Step;
use crate::worker::{Hit, IndexInfo, Job, MaskRow, Reply};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Search,
    FillMask,
}

/// What the command line gave.
pub struct Settings {
    pub folder: Option<String>,
    pub model: String,
    pub mlm_model: String,
    pub script: Option<Vec<Step>>,
    pub script_timeout: Duration,
}

/// What a scripted run leaves for `main`: its JSON report, or why it failed.
#[derive(Default)]
pub struct Outcome {
    pub report: Option<Value>,
    pub error: Option<String>,
}

enum IndexState {
    Idle,
    Working {
        started: Instant,
        cancel: Arc<AtomicBool>,
        done: usize,
        total: usize,
    },
    Done(Box<IndexInfo>),
    Failed(String),
    Cancelled,
}

/// Frame times: the largest gap between two frames while indexing ran.
#[derive(Default)]
struct FrameClock {
    last: Option<Instant>,
    max_gap: Duration,
    frames: u64,
    indexing: Duration,
}

enum Shot {
    None,
    /// Frames still to draw before the capture (so that the layout has settled).
    Settling(u32),
    Requested(Arc<Mutex<Option<Arc<egui::ColorImage>>>>),
}

struct Player {
    steps: Vec<Step>,
    pos: usize,
    started: Instant,
    timeout: Duration,
    shot: Shot,
    screenshot: Option<Value>,
    outcome: Arc<Mutex<Outcome>>,
    finished: bool,
}

pub struct App {
    jobs: Sender<Job>,
    replies: Receiver<Reply>,
    gpu: Arc<Gpu>,
    /// Messages from the host's device callbacks (lost device, uncaptured errors).
    device_errors: Arc<Mutex<Vec<String>>>,
    tab: Tab,
    folder: String,
    model: String,
    mlm_model: String,
    browse: Option<PathBuf>,
    index: IndexState,
    loading: Option<String>,
    read: Option<(usize, usize)>,
    skipped: Vec<String>,
    query: String,
    query_id: u64,
    results: Option<(u64, Result<Vec<Hit>, String>)>,
    mask_text: String,
    mask_id: u64,
    masks: Option<(u64, Result<Vec<MaskRow>, String>)>,
    clock: FrameClock,
    player: Option<Player>,
    worker_gone: bool,
}

impl App {
    pub fn new(
        settings: Settings,
        gpu: Arc<Gpu>,
        device_errors: Arc<Mutex<Vec<String>>>,
        jobs: Sender<Job>,
        replies: Receiver<Reply>,
        outcome: Arc<Mutex<Outcome>>,
    ) -> App {
        let mut app = App {
            jobs,
            replies,
            gpu,
            device_errors,
            tab: Tab::Search,
            folder: settings.folder.clone().unwrap_or_default(),
            model: settings.model,
            mlm_model: settings.mlm_model,
            browse: None,
            index: IndexState::Idle,
            loading: None,
            read: None,
            skipped: Vec::new(),
            query: String::new(),
            query_id: 0,
            results: None,
            mask_text: "the capital of france is [MASK] .".into(),
            mask_id: 0,
            masks: None,
            clock: FrameClock::default(),
            player: settings.script.map(|steps| Player {
                steps,
                pos: 0,
                started: Instant::now(),
                timeout: settings.script_timeout,
                shot: Shot::None,
                screenshot: None,
                outcome,
                finished: false,
            }),
            worker_gone: false,
        };
        // A folder given on the command line is indexed at once (not in scripted mode: the
        // script says when).
        if settings.folder.is_some() && app.player.is_none() {
            app.start_index();
        }
        app
    }

    fn indexing(&self) -> bool {
        matches!(self.index, IndexState::Working { .. })
    }

    fn send(&mut self, job: Job) {
        if self.jobs.send(job).is_err() {
            self.worker_gone = true;
        }
    }

    fn start_index(&mut self) {
        if self.indexing() {
            return;
        }
        let folder = self.folder.trim().to_string();
        if folder.is_empty() {
            self.index = IndexState::Failed("choose a folder to index".into());
            return;
        }
        if self.model.trim().is_empty() {
            self.index = IndexState::Failed("choose an embedding model (--model)".into());
            return;
        }
        let cancel = Arc::new(AtomicBool::new(false));
        self.index = IndexState::Working {
            started: Instant::now(),
            cancel: cancel.clone(),
            done: 0,
            total: 0,
        };
        self.read = None;
        self.skipped.clear();
        self.results = None;
        self.send(Job::Index {
            folder: PathBuf::from(folder),
            model: self.model.trim().to_string(),
            cancel,
        });
    }

    fn submit_query(&mut self) {
        self.query_id += 1;
        let (id, text) = (self.query_id, self.query.clone());
        self.send(Job::Query { id, text });
    }

    fn submit_mask(&mut self) {
        self.mask_id += 1;
        let (id, model, text) = (
            self.mask_id,
            self.mlm_model.trim().to_string(),
            self.mask_text.clone(),
        );
        self.send(Job::FillMask { id, model, text });
    }

    fn drain(&mut self) {
        loop {
            let reply = match self.replies.try_recv() {
                Ok(r) => r,
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    self.worker_gone = true;
                    if self.indexing() {
                        self.index = IndexState::Failed("the GPU worker stopped".into());
                    }
                    break;
                }
            };
            match reply {
                Reply::Loading { model, done } => {
                    self.loading = (!done).then_some(model);
                }
                Reply::Read {
                    files,
                    chunks,
                    skipped,
                } => {
                    self.read = Some((files, chunks));
                    self.skipped = skipped;
                    if let IndexState::Working { total, .. } = &mut self.index {
                        *total = chunks;
                    }
                }
                Reply::Progress { done: d, total: t } => {
                    if let IndexState::Working { done, total, .. } = &mut self.index {
                        (*done, *total) = (d, t);
                    }
                }
                Reply::Indexed(r) => {
                    self.finish_indexing();
                    self.index = match r {
                        Ok(info) => IndexState::Done(Box::new(info)),
                        Err(e) => IndexState::Failed(e),
                    };
                }
                Reply::Cancelled => {
                    self.finish_indexing();
                    self.index = IndexState::Cancelled;
                }
                Reply::Results { id, result } => self.results = Some((id, result)),
                Reply::Masks { id, result } => self.masks = Some((id, result)),
            }
        }
    }

    fn finish_indexing(&mut self) {
        if let IndexState::Working { started, .. } = &self.index {
            self.clock.indexing = started.elapsed();
        }
    }

    fn tick_clock(&mut self) {
        let now = Instant::now();
        if let Some(last) = self.clock.last
            && self.indexing()
        {
            self.clock.max_gap = self.clock.max_gap.max(now - last);
            self.clock.frames += 1;
        }
        self.clock.last = Some(now);
    }

    /// The device and its shortfalls, for the status bar and the report.
    fn device_report(&self) -> Value {
        let info = self.gpu.info();
        json!({
            "adapter": info.name,
            "backend": format!("{:?}", info.backend),
            "f16": self.gpu.caps().f16,
            "shortfalls": self.gpu.shortfalls(),
        })
    }

    fn report(&self, ctx: &egui::Context) -> Value {
        let (index, error) = match &self.index {
            IndexState::Done(info) => (serde_json::to_value(info.as_ref()).ok(), None),
            IndexState::Failed(e) => (None, Some(e.clone())),
            _ => (None, None),
        };
        let results = match &self.results {
            Some((_, Ok(hits))) => serde_json::to_value(hits).unwrap_or(Value::Null),
            _ => Value::Null,
        };
        let masks = match &self.masks {
            Some((_, Ok(rows))) => Value::Array(
                rows.iter()
                    .map(|r| {
                        json!({"position": r.position, "candidates": r.candidates.iter()
                            .map(|(t, s, _)| json!({"token": t, "score": s})).collect::<Vec<_>>()})
                    })
                    .collect(),
            ),
            _ => Value::Null,
        };
        let ppp = ctx.pixels_per_point();
        let window = ctx.input(|i| i.viewport().inner_rect).map(|r| {
            [
                (r.width() * ppp).round() as u32,
                (r.height() * ppp).round() as u32,
            ]
        });
        json!({
            "device": self.device_report(),
            "index": index,
            "index_error": error,
            "skipped": self.skipped,
            "query": self.query,
            "results": results,
            "masks": masks,
            "frames": {
                "max_gap_ms_while_indexing": self.clock.max_gap.as_secs_f64() * 1e3,
                "frames_while_indexing": self.clock.frames,
                "indexing_seconds": self.clock.indexing.as_secs_f64(),
            },
            "window": window,
            "pixels_per_point": ppp,
        })
    }

    /// Plays script steps until one has to wait for a later frame.
    fn play(&mut self, ctx: &egui::Context) {
        let Some(p) = &self.player else { return };
        if p.finished {
            return;
        }
        if p.started.elapsed() > p.timeout {
            let step = p.steps.get(p.pos).cloned();
            return self.fail(ctx, format!("script timed out at step {step:?}"));
        }
        loop {
            let Some(p) = &mut self.player else { return };
            let Some(step) = p.steps.get(p.pos).cloned() else {
                return;
            };
            match step {
                Step::Folder(dir) => {
                    self.folder = dir;
                    self.start_index();
                }
                Step::WaitIndexed => match &self.index {
                    IndexState::Done(_) => {}
                    IndexState::Failed(e) => {
                        let e = e.clone();
                        return self.fail(ctx, format!("indexing failed: {e}"));
                    }
                    IndexState::Cancelled => return self.fail(ctx, "indexing cancelled".into()),
                    IndexState::Idle => return self.fail(ctx, "nothing is being indexed".into()),
                    IndexState::Working { .. } => return,
                },
                Step::Query(q) => {
                    self.query = q;
                    self.submit_query();
                }
                Step::WaitResults => match &self.results {
                    Some((id, Ok(_))) if *id == self.query_id => {}
                    Some((id, Err(e))) if *id == self.query_id => {
                        let e = e.clone();
                        return self.fail(ctx, format!("search failed: {e}"));
                    }
                    _ => return,
                },
                Step::Tab(t) => self.tab = t,
                Step::Mask(m) => {
                    self.mask_text = m;
                    self.submit_mask();
                }
                Step::WaitMasks => match &self.masks {
                    Some((id, Ok(_))) if *id == self.mask_id => {}
                    Some((id, Err(e))) if *id == self.mask_id => {
                        let e = e.clone();
                        return self.fail(ctx, format!("fill-mask failed: {e}"));
                    }
                    _ => return,
                },
                Step::Screenshot(path) => match &mut p.shot {
                    Shot::None => {
                        p.shot = Shot::Settling(3);
                        return;
                    }
                    Shot::Settling(0) => {
                        let slot = Arc::new(Mutex::new(None));
                        let fill = slot.clone();
                        let repaint = ctx.clone();
                        ctx.send_viewport_cmd(egui::ViewportCommand::Screenshot(
                            egui::ScreenshotCallback::new(move |image| {
                                if let Ok(mut s) = fill.lock() {
                                    *s = Some(image);
                                }
                                repaint.request_repaint();
                            }),
                        ));
                        p.shot = Shot::Requested(slot);
                        return;
                    }
                    Shot::Settling(n) => {
                        *n -= 1;
                        return;
                    }
                    Shot::Requested(slot) => {
                        let image = slot.lock().ok().and_then(|mut s| s.take());
                        let Some(image) = image else { return };
                        p.shot = Shot::None;
                        match save_png(&path, &image) {
                            Ok(()) => {
                                p.screenshot = Some(json!({"path": path, "size": image.size}));
                            }
                            Err(e) => return self.fail(ctx, e),
                        }
                    }
                },
                Step::Exit => {
                    let mut report = self.report(ctx);
                    let Some(p) = &mut self.player else { return };
                    report["screenshot"] = p.screenshot.clone().unwrap_or(Value::Null);
                    if let Ok(mut o) = p.outcome.lock() {
                        o.report = Some(report);
                    }
                    p.finished = true;
                    ctx.send_viewport_cmd(egui::ViewportCommand::Close);
                    return;
                }
            }
            if let Some(p) = &mut self.player {
                p.pos += 1;
            }
        }
    }

    fn fail(&mut self, ctx: &egui::Context, message: String) {
        let report = self.report(ctx);
        if let Some(p) = &mut self.player {
            if let Ok(mut o) = p.outcome.lock() {
                o.report = Some(report);
                o.error = Some(message);
            }
            p.finished = true;
        }
        ctx.send_viewport_cmd(egui::ViewportCommand::Close);
    }
}

fn save_png(path: &str, image: &egui::ColorImage) -> Result<(), String> {
    let [w, h] = image.size;
    let mut rgba = Vec::with_capacity(w * h * 4);
    for c in &image.pixels {
        rgba.extend_from_slice(&c.to_srgba_unmultiplied());
    }
    let buf = image::RgbaImage::from_raw(w as u32, h as u32, rgba)
        .ok_or_else(|| format!("screenshot of {w}x{h} has the wrong number of pixels"))?;
    if let Some(dir) = std::path::Path::new(path).parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    let file = std::fs::File::create(path).map_err(|e| format!("cannot write {path}: {e}"))?;
    let png = image::codecs::png::PngEncoder::new_with_quality(
        std::io::BufWriter::new(file),
        image::codecs::png::CompressionType::Best,
        image::codecs::png::FilterType::Adaptive,
    );
    buf.write_with_encoder(png)
        .map_err(|e| format!("cannot write {path}: {e}"))
}

const ERROR: egui::Color32 = egui::Color32::from_rgb(220, 80, 70);
const NOTE: egui::Color32 = egui::Color32::from_rgb(200, 160, 60);

impl eframe::App for App {
    fn ui(&mut self, ui: &mut egui::Ui, _frame: &mut eframe::Frame) {
        let ctx = ui.ctx().clone();
        self.drain();
        self.tick_clock();
        self.play(&ctx);
        // Keep drawing at frame rate while the worker is busy (the frame clock measures it).
        if self.indexing() || self.loading.is_some() || self.player.is_some() {
            ctx.request_repaint();
        }

        egui::Panel::top("tabs").show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.heading("desktop-search");
                ui.separator();
                ui.selectable_value(&mut self.tab, Tab::Search, "Search");
                ui.selectable_value(&mut self.tab, Tab::FillMask, "Fill mask");
            });
        });
        egui::Panel::bottom("status").show(ui, |ui| self.status_bar(ui));
        egui::CentralPanel::default_margins().show(ui, |ui| match self.tab {
            Tab::Search => self.search_tab(ui),
            Tab::FillMask => self.fill_mask_tab(ui),
        });
    }
}

impl App {
    fn status_bar(&mut self, ui: &mut egui::Ui) {
        let info = self.gpu.info();
        ui.horizontal_wrapped(|ui| {
            ui.label(format!(
                "GPU: {} ({:?}) · one device for rendering and wgbert",
                info.name, info.backend
            ));
            ui.separator();
            if self.clock.max_gap > Duration::ZERO {
                ui.label(format!(
                    "largest frame gap while indexing: {:.1} ms over {} frames",
                    self.clock.max_gap.as_secs_f64() * 1e3,
                    self.clock.frames
                ));
            }
        });
        for line in self.gpu.shortfalls() {
            ui.colored_label(NOTE, format!("wgbert: {line}"));
        }
        if let Ok(errors) = self.device_errors.lock() {
            for e in errors.iter() {
                ui.colored_label(ERROR, e);
            }
        }
        if self.worker_gone {
            ui.colored_label(ERROR, "the GPU worker stopped");
        }
    }

    fn search_tab(&mut self, ui: &mut egui::Ui) {
        let width = ui.available_width();
        egui::Grid::new("inputs")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                ui.label("Folder");
                ui.horizontal(|ui| {
                    ui.add(
                        egui::TextEdit::singleline(&mut self.folder)
                            .desired_width(width - 300.0)
                            .hint_text("a folder of text and code files"),
                    );
                    if ui.button("Browse…").clicked() {
                        self.browse = match self.browse {
                            Some(_) => None,
                            None => Some(browse_start(&self.folder)),
                        };
                    }
                    if self.indexing() {
                        if ui.button("Cancel").clicked()
                            && let IndexState::Working { cancel, .. } = &self.index
                        {
                            cancel.store(true, Ordering::Relaxed);
                        }
                    } else if ui.button("Index").clicked() {
                        self.browse = None;
                        self.start_index();
                    }
                });
                ui.end_row();
                ui.label("Model");
                ui.add(
                    egui::TextEdit::singleline(&mut self.model)
                        .desired_width(width - 300.0)
                        .hint_text("a model directory or hub id"),
                );
                ui.end_row();
            });
        if self.browse.is_some() {
            self.browser(ui);
        }
        self.index_status(ui);
        ui.separator();
        let ready = matches!(self.index, IndexState::Done(_));
        ui.horizontal(|ui| {
            ui.label("Query");
            let edit = ui.add_enabled(
                ready,
                egui::TextEdit::singleline(&mut self.query)
                    .desired_width(width - 150.0)
                    .hint_text("what are you looking for?"),
            );
            let enter = edit.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter));
            if ui.add_enabled(ready, egui::Button::new("Search")).clicked() || enter {
                self.submit_query();
            }
        });
        ui.add_space(4.0);
        match &self.results {
            None => {}
            Some((id, _)) if *id != self.query_id => {
                ui.spinner();
            }
            Some((_, Err(e))) => {
                ui.colored_label(ERROR, e);
            }
            Some((_, Ok(hits))) if hits.is_empty() => {
                ui.label("no files");
            }
            Some((_, Ok(hits))) => {
                egui::ScrollArea::vertical()
                    .auto_shrink([false, false])
                    .show(ui, |ui| {
                        for (rank, h) in hits.iter().enumerate() {
                            result_card(ui, rank + 1, h);
                        }
                    });
            }
        }
    }

    fn index_status(&mut self, ui: &mut egui::Ui) {
        if let Some(model) = &self.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("loading {model}…"));
            });
        }
        match &self.index {
            IndexState::Idle => {
                ui.label("Pick a folder and press Index.");
            }
            IndexState::Working { done, total, .. } => {
                let frac = if *total == 0 {
                    0.0
                } else {
                    *done as f32 / *total as f32
                };
                let text = match self.read {
                    None => "reading the folder…".to_string(),
                    Some((files, _)) => {
                        format!("embedding {done} of {total} chunks ({files} files)")
                    }
                };
                ui.add(egui::ProgressBar::new(frac).text(text).animate(true));
            }
            IndexState::Done(info) => {
                ui.label(format!(
                    "Indexed {} files, {} chunks in {:.1} s ({} on {}, {}).",
                    info.files,
                    info.chunks.len(),
                    info.seconds,
                    short_name(&info.model),
                    self.gpu.info().name,
                    info.dtype,
                ));
            }
            IndexState::Failed(e) => {
                ui.colored_label(ERROR, e);
            }
            IndexState::Cancelled => {
                ui.colored_label(NOTE, "Indexing cancelled.");
            }
        }
        if !self.skipped.is_empty() {
            egui::CollapsingHeader::new(format!("{} skipped", self.skipped.len()))
                .id_salt("skipped")
                .show(ui, |ui| {
                    for s in &self.skipped {
                        ui.colored_label(NOTE, s);
                    }
                });
        }
    }

    /// A small folder browser: the subfolders of one folder, a click descends, "..." goes up,
    /// "Use this folder" picks it.
    fn browser(&mut self, ui: &mut egui::Ui) {
        let Some(dir) = self.browse.clone() else {
            return;
        };
        let mut go: Option<PathBuf> = None;
        egui::Frame::group(ui.style()).show(ui, |ui| {
            ui.horizontal(|ui| {
                ui.monospace(dir.display().to_string());
                if ui.button("Use this folder").clicked() {
                    self.folder = dir.display().to_string();
                    self.browse = None;
                }
            });
            egui::ScrollArea::vertical()
                .max_height(160.0)
                .show(ui, |ui| {
                    if let Some(parent) = dir.parent()
                        && ui.selectable_label(false, "⬆ ..").clicked()
                    {
                        go = Some(parent.to_path_buf());
                    }
                    let mut subdirs: Vec<PathBuf> = std::fs::read_dir(&dir)
                        .map(|rd| {
                            rd.flatten()
                                .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
                                .map(|e| e.path())
                                .collect()
                        })
                        .unwrap_or_default();
                    subdirs.sort();
                    for d in subdirs {
                        let name = d.file_name().map(|n| n.to_string_lossy().into_owned());
                        if ui
                            .selectable_label(false, format!("🗀 {}", name.unwrap_or_default()))
                            .clicked()
                        {
                            go = Some(d);
                        }
                    }
                });
        });
        if let Some(d) = go
            && self.browse.is_some()
        {
            self.browse = Some(d);
        }
    }

    fn fill_mask_tab(&mut self, ui: &mut egui::Ui) {
        let width = ui.available_width();
        egui::Grid::new("mask inputs")
            .num_columns(2)
            .spacing([8.0, 6.0])
            .show(ui, |ui| {
                ui.label("MLM model");
                ui.add(
                    egui::TextEdit::singleline(&mut self.mlm_model)
                        .desired_width(width - 120.0)
                        .hint_text("a masked-language model directory or hub id"),
                );
                ui.end_row();
                ui.label("Text");
                ui.add(
                    egui::TextEdit::singleline(&mut self.mask_text)
                        .desired_width(width - 120.0)
                        .hint_text("a text with [MASK]"),
                );
                ui.end_row();
            });
        if ui.button("Fill").clicked() {
            self.submit_mask();
        }
        if let Some(model) = &self.loading {
            ui.horizontal(|ui| {
                ui.spinner();
                ui.label(format!("loading {model}…"));
            });
        }
        ui.separator();
        match &self.masks {
            None => {}
            Some((id, _)) if *id != self.mask_id => {
                ui.spinner();
            }
            Some((_, Err(e))) => {
                ui.colored_label(ERROR, e);
            }
            Some((_, Ok(rows))) => {
                for row in rows {
                    ui.label(format!("[MASK] at token {}", row.position));
                    egui::Grid::new(("mask", row.position))
                        .striped(true)
                        .show(ui, |ui| {
                            for (token, score, sequence) in &row.candidates {
                                ui.monospace(format!("{score:.4}"));
                                ui.strong(token);
                                ui.label(sequence);
                                ui.end_row();
                            }
                        });
                    ui.add_space(6.0);
                }
            }
        }
    }
}

fn result_card(ui: &mut egui::Ui, rank: usize, h: &Hit) {
    egui::Frame::group(ui.style()).show(ui, |ui| {
        ui.set_width(ui.available_width());
        ui.horizontal(|ui| {
            ui.monospace(format!("{rank:>2}."));
            ui.monospace(format!("{:.4}", h.score));
            ui.strong(&h.file);
            ui.weak(format!("lines {}–{}", h.lines[0], h.lines[1]));
        });
        // The chunk's first lines, each cut to the card's width.
        for line in h.text.lines().filter(|l| !l.trim().is_empty()).take(4) {
            ui.add(egui::Label::new(egui::RichText::new(line).monospace()).truncate());
        }
    });
}

fn short_name(model: &str) -> &str {
    std::path::Path::new(model.trim_end_matches('/'))
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(model)
}

fn browse_start(folder: &str) -> PathBuf {
    let p = PathBuf::from(folder.trim());
    if p.is_dir() {
        return std::fs::canonicalize(&p).unwrap_or(p);
    }
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"))
}
