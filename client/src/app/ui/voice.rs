//! Call controls: camera, mic, deafen and push-to-talk in the status bar, the
//! devices window (microphone, speaker, camera, noise suppression,
//! push-to-talk), per-person volume on the roster, and the keys (hold V to
//! talk, M to mute, C for the camera).

use crate::app::bridge::Session;
use crate::app::input::UiFocus;
use crate::media::processing::Suppressor;
use crate::media::video::camera::{self, CameraSpec};
use crate::media::{MicSpec, SpeakerSpec, device};
use bevy::prelude::*;
use bevy_egui::egui;
use hallway_shared::UserId;

/// The push-to-talk key.
pub const TALK_KEY: KeyCode = KeyCode::KeyV;

#[derive(Default)]
pub(super) struct VoicePanel {
    pub settings_open: bool,
    inputs: Vec<String>,
    outputs: Vec<String>,
    cameras: Vec<String>,
}

const RED: egui::Color32 = egui::Color32::from_rgb(224, 77, 71);
const GREEN: egui::Color32 = egui::Color32::from_rgb(77, 199, 102);

/// Mic, deafen and settings buttons (drawn right to left in the status bar).
pub(super) fn status_controls(ui: &mut egui::Ui, session: &mut Session, panel: &mut VoicePanel) {
    if ui.button("Devices…").clicked() {
        panel.settings_open = !panel.settings_open;
        panel.inputs = device::input_devices();
        panel.outputs = device::output_devices();
        panel.cameras = camera::cameras();
    }
    let Some(voice) = session.client.call.as_mut() else {
        if let Some(e) = &session.voice_error {
            ui.colored_label(RED, e);
        }
        return;
    };
    let deafened = voice.deafened();
    if ui
        .selectable_label(deafened, if deafened { "Deafened" } else { "Deafen" })
        .on_hover_text("Hear nobody and send nothing")
        .clicked()
    {
        voice.set_deafened(!deafened);
        session.settings.audio.muted = voice.muted();
    }
    let camera_on = voice.camera_on();
    let camera_label = if camera_on {
        egui::RichText::new("Camera on").color(GREEN)
    } else {
        egui::RichText::new("Camera off")
    };
    if ui
        .button(camera_label)
        .on_hover_text("Turn the camera on or off (C)")
        .clicked()
    {
        toggle_camera(session);
    }
    let Some(voice) = session.client.call.as_mut() else {
        return;
    };
    let muted = voice.muted();
    let label = if muted {
        egui::RichText::new("Mic off").color(RED)
    } else if session.settings.audio.push_to_talk {
        egui::RichText::new(if voice.speaking() {
            "Talking"
        } else {
            "Hold V to talk"
        })
    } else if voice.speaking() {
        egui::RichText::new("Mic on").color(GREEN).strong()
    } else {
        egui::RichText::new("Mic on")
    };
    if ui
        .button(label)
        .on_hover_text("Mute or unmute (M)")
        .clicked()
    {
        voice.set_muted(!muted);
        session.settings.audio.muted = !muted;
        let _ = session.settings.save();
    }
    let capture = voice.capture_stats();
    let camera = voice.camera_stats();
    let errors = [
        capture.error.clone().map(|e| ("Microphone", e)),
        camera.error.filter(|_| camera.on).map(|e| ("Camera", e)),
        voice.output_error().map(|e| ("Speaker", e)),
    ];
    if let Some(notice) = &capture.notice {
        ui.label("🎤 Microphone changed").on_hover_text(notice);
    }
    if let Some(notice) = voice.mixer_stats().notice {
        ui.label("🔈 Speaker changed").on_hover_text(notice);
    }
    // Short in the bar; the whole story on hover.
    for (device, e) in errors.into_iter().flatten() {
        let short: String = e.chars().take(28).collect();
        let more = if short.len() < e.len() { "…" } else { "" };
        ui.colored_label(RED, format!("⚠ {device}: {short}{more}"))
            .on_hover_text(e);
    }
}

/// Turns the camera on or off and remembers the choice.
fn toggle_camera(session: &mut Session) {
    let Some(voice) = session.client.call.as_ref() else {
        return;
    };
    let on = !voice.camera_on();
    voice.set_camera_on(on);
    session.settings.video.camera_on = on;
    let _ = session.settings.save();
}

/// The devices window.
pub(super) fn settings_window(ctx: &egui::Context, session: &mut Session, panel: &mut VoicePanel) {
    let mut open = panel.settings_open;
    egui::Window::new("Devices")
        .open(&mut open)
        .resizable(false)
        .collapsible(false)
        .show(ctx, |ui| {
            let audio = session.settings.audio.clone();
            let mut changed = audio.clone();
            device_combo(ui, "Microphone", &panel.inputs, &mut changed.input_device);
            device_combo(ui, "Speaker", &panel.outputs, &mut changed.output_device);
            if session.fake_mic.is_some() || session.fake_speaker.is_some() {
                ui.weak("Fake devices from the command line are in use.");
            }
            ui.checkbox(&mut changed.echo_cancellation, "Echo cancellation")
                .on_hover_text(
                    "Removes what your speakers play from your microphone, so people \
                     don't hear themselves when you use speakers instead of headphones.",
                );
            ui.horizontal(|ui| {
                ui.checkbox(&mut changed.noise_suppression, "Noise suppression");
                ui.add_enabled_ui(changed.noise_suppression, |ui| {
                    egui::ComboBox::from_id_salt("suppressor")
                        .selected_text(suppressor_name(changed.suppressor))
                        .show_ui(ui, |ui| {
                            for s in [Suppressor::Webrtc, Suppressor::Rnnoise] {
                                ui.selectable_value(&mut changed.suppressor, s, suppressor_name(s));
                            }
                        });
                });
            });
            ui.checkbox(&mut changed.auto_gain, "Automatic gain")
                .on_hover_text("Keeps your voice at a steady level, near or far from the mic.");
            ui.checkbox(&mut changed.sounds, "Sounds").on_hover_text(
                "A chime when someone joins or leaves your conversation, for a direct \
                 message or a mention, and when you enter a meeting room.",
            );
            ui.checkbox(&mut changed.push_to_talk, "Push to talk (hold V)");
            ui.checkbox(&mut changed.always_relay, "Always relay (hide my address)")
                .on_hover_text(
                    "Calls go through the server's relay, so the people you talk to never \
                     see your address. Applies to calls started from now on.",
                );
            if let Some(voice) = session.client.call.as_ref() {
                let level = voice
                    .control()
                    .level_milli
                    .load(std::sync::atomic::Ordering::Relaxed) as f32
                    / 1000.0;
                ui.add(
                    egui::ProgressBar::new((level * 4.0).min(1.0))
                        .desired_width(220.0)
                        .text("input level"),
                );
            }
            let mut video = session.settings.video.clone();
            let before = video.camera.clone();
            device_combo(ui, "Camera", &panel.cameras, &mut video.camera);
            if panel.cameras.is_empty() {
                ui.weak("No camera found.");
            }
            if session.fake_camera.is_some() {
                ui.weak("The fake camera from the command line is in use.");
            }
            if video.camera != before {
                if let Some(voice) = session.client.call.as_ref()
                    && session.fake_camera.is_none()
                {
                    voice.set_camera(
                        video
                            .camera
                            .clone()
                            .map_or(CameraSpec::Default, CameraSpec::Named),
                    );
                }
                session.settings.video = video;
                let _ = session.settings.save();
            }
            if changed != audio {
                if let Some(voice) = session.client.call.as_mut() {
                    if changed.input_device != audio.input_device && session.fake_mic.is_none() {
                        voice.set_mic(
                            changed
                                .input_device
                                .clone()
                                .map_or(MicSpec::Default, MicSpec::Named),
                        );
                    }
                    if changed.output_device != audio.output_device
                        && session.fake_speaker.is_none()
                    {
                        voice.set_speaker(
                            changed
                                .output_device
                                .clone()
                                .map_or(SpeakerSpec::Default, SpeakerSpec::Named),
                        );
                    }
                    voice.set_processing(changed.processing());
                    voice.set_sounds(changed.sounds);
                    voice.set_relay_only(changed.always_relay);
                    voice.set_push_to_talk(changed.push_to_talk);
                }
                session.settings.audio = changed;
                let _ = session.settings.save();
            }
        });
    panel.settings_open = open;
}

fn suppressor_name(s: Suppressor) -> &'static str {
    match s {
        Suppressor::Webrtc => "Standard",
        Suppressor::Rnnoise => "RNNoise",
    }
}

fn device_combo(ui: &mut egui::Ui, label: &str, devices: &[String], value: &mut Option<String>) {
    let shown = value.clone().unwrap_or_else(|| "System default".into());
    egui::ComboBox::from_label(label)
        .selected_text(shown)
        .width(220.0)
        .show_ui(ui, |ui| {
            ui.selectable_value(value, None, "System default");
            for d in devices {
                ui.selectable_value(value, Some(d.clone()), d);
            }
        });
}

/// A volume slider and speaking mark for a peer on the roster.
pub(super) fn peer_controls(ui: &mut egui::Ui, session: &mut Session, user: UserId) {
    let Some(voice) = session.client.call.as_mut() else {
        return;
    };
    if voice.peer_speaking(user) {
        ui.colored_label(GREEN, "speaking");
    }
    let mut volume = voice.volume(user) * 100.0;
    let slider = egui::Slider::new(&mut volume, 0.0..=200.0)
        .suffix("%")
        .show_value(false);
    if ui
        .add_sized([70.0, 16.0], slider)
        .on_hover_text("Volume")
        .changed()
    {
        voice.set_volume(user, volume / 100.0);
        session
            .settings
            .audio
            .volumes
            .insert(user.0, volume / 100.0);
        let _ = session.settings.save();
    }
}

/// Hold V to talk (push-to-talk mode), M to mute; not while typing.
pub(super) fn record_voice_keys(
    keys: Res<ButtonInput<KeyCode>>,
    focus: Res<UiFocus>,
    mut session: ResMut<Session>,
) {
    let session = &mut *session;
    let Some(voice) = session.client.call.as_mut() else {
        return;
    };
    voice.set_talk_key(!focus.keyboard && keys.pressed(TALK_KEY));
    if !focus.keyboard && keys.just_pressed(KeyCode::KeyC) {
        toggle_camera(session);
    }
    let Some(voice) = session.client.call.as_mut() else {
        return;
    };
    if !focus.keyboard && keys.just_pressed(KeyCode::KeyM) {
        let muted = !voice.muted();
        voice.set_muted(muted);
        session.settings.audio.muted = muted;
        let _ = session.settings.save();
    }
}
