//! The side panel (chat, people), the status bar, and the zone name toast.
//! All egui, drawn in bevy_egui's pass; it records in [`UiFocus`] whether
//! egui is using the keyboard or the pointer.

use super::bridge::{Bridge, ConnectionStatus, Reply, Session};
use super::input::UiFocus;
use super::office::OfficeMap;
use super::office::avatars::{Avatar, LocalAvatar};
use super::office::movement::Route;
use super::screens::Screen;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use hallway_shared::protocol::{ChannelKind, ClientMessage, MessageKind, Status};
use hallway_shared::{TilePos, UserId};

mod voice;

#[derive(Resource, Default)]
struct PanelState {
    tab: Tab,
    draft: String,
    /// The zone we were in last frame, for the toast.
    zone: Option<u32>,
    toast: Option<(String, f64)>,
    voice: voice::VoicePanel,
}

#[derive(Default, PartialEq, Clone, Copy)]
enum Tab {
    #[default]
    Chat,
    People,
}

/// Width of the side panel in logical pixels.
pub const PANEL_WIDTH: f32 = 320.0;

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<PanelState>();
    app.add_systems(
        EguiPrimaryContextPass,
        (draw_office_ui, record_focus)
            .chain()
            .run_if(in_state(Screen::Office)),
    );
    app.add_systems(Update, toast_zone_entry.run_if(in_state(Screen::Office)));
    app.add_systems(
        Update,
        voice::record_voice_keys
            .in_set(super::AppSet::Input)
            .run_if(in_state(Screen::Office)),
    );
}

fn record_focus(mut contexts: EguiContexts, mut focus: ResMut<UiFocus>) -> Result {
    let ctx = contexts.ctx_mut()?;
    focus.keyboard = ctx.egui_wants_keyboard_input();
    focus.pointer = ctx.egui_wants_pointer_input() || ctx.is_pointer_over_egui();
    Ok(())
}

fn status_color(status: Status) -> egui::Color32 {
    match status {
        Status::Available => egui::Color32::from_rgb(77, 199, 102),
        Status::Busy => egui::Color32::from_rgb(224, 77, 71),
        Status::Away => egui::Color32::from_rgb(242, 184, 51),
    }
}

fn toast_zone_entry(
    time: Res<Time>,
    map: Option<Res<OfficeMap>>,
    player: Query<&Avatar, With<LocalAvatar>>,
    mut panel: ResMut<PanelState>,
) {
    let (Some(map), Ok(avatar)) = (map, player.single()) else {
        return;
    };
    let zone = map.0.zone_at(avatar.tile);
    let id = zone.map(|z| z.0);
    if id != panel.zone {
        panel.zone = id;
        if let Some(z) = zone.and_then(|z| map.0.zone(z)) {
            panel.toast = Some((
                format!("You entered {}", z.name),
                time.elapsed_secs_f64() + 3.0,
            ));
        }
    }
}

#[allow(clippy::too_many_arguments)]
fn draw_office_ui(
    mut contexts: EguiContexts,
    mut session: ResMut<Session>,
    mut panel: ResMut<PanelState>,
    bridge: Res<Bridge>,
    time: Res<Time>,
    mut route: ResMut<Route>,
    mut next: ResMut<NextState<Screen>>,
    mut videos: ResMut<super::video::VideoTextures>,
) -> Result {
    let ctx = contexts.ctx_mut()?.clone();
    let now = time.elapsed_secs_f64();
    let mut root = egui::Ui::new(
        ctx.clone(),
        "office-ui".into(),
        egui::UiBuilder::new()
            .layer_id(egui::LayerId::background())
            .max_rect(ctx.viewport_rect()),
    );
    let session = &mut *session;

    egui::Panel::top("status-bar").show(&mut root, |ui| {
        ui.horizontal(|ui| {
            let space = session
                .client
                .space
                .space
                .as_ref()
                .map_or("…", |s| s.name.as_str());
            ui.strong(format!("Hallway · {space}"));
            ui.separator();
            let (text, color) = match &session.status {
                ConnectionStatus::Online => (
                    "● connected".to_owned(),
                    egui::Color32::from_rgb(77, 199, 102),
                ),
                ConnectionStatus::Connecting { attempt } if *attempt <= 1 => (
                    "● connecting…".to_owned(),
                    egui::Color32::from_rgb(242, 184, 51),
                ),
                ConnectionStatus::Connecting { attempt } => (
                    format!("● reconnecting (try {attempt})…"),
                    egui::Color32::from_rgb(242, 184, 51),
                ),
                ConnectionStatus::Retrying { at, .. } => (
                    format!("● offline, retrying in {:.0} s", (at - now).max(0.0)),
                    egui::Color32::from_rgb(224, 77, 71),
                ),
                ConnectionStatus::Replaced => (
                    "● opened elsewhere; this window is disconnected".to_owned(),
                    egui::Color32::from_rgb(224, 77, 71),
                ),
                ConnectionStatus::Offline => ("● offline".to_owned(), egui::Color32::GRAY),
            };
            ui.colored_label(color, text);
            if let Some(h) = &session.hosted {
                ui.separator();
                ui.weak(format!(
                    "Others can join at {}",
                    super::screens::join_addresses_public(h)
                ));
            }
            ui.with_layout(egui::Layout::right_to_left(egui::Align::Center), |ui| {
                if ui.button("Spaces").clicked() {
                    next.set(Screen::Spaces);
                }
                ui.separator();
                voice::status_controls(ui, session, &mut panel.voice);
            });
        });
    });

    egui::Panel::right("side-panel")
        .exact_size(PANEL_WIDTH)
        .resizable(false)
        .show(&mut root, |ui| {
            ui.horizontal(|ui| {
                let unread = session.client.chat.total_unread();
                let chat_label = if unread > 0 {
                    format!("Chat ({unread})")
                } else {
                    "Chat".to_owned()
                };
                ui.selectable_value(&mut panel.tab, Tab::Chat, chat_label);
                let online = session.client.space.members.len();
                ui.selectable_value(&mut panel.tab, Tab::People, format!("People ({online})"));
            });
            ui.separator();
            match panel.tab {
                Tab::Chat => chat_tab(ui, session, &mut panel, &bridge),
                Tab::People => people_tab(ui, session, &mut panel, &bridge, &mut route),
            }
        });

    voice::settings_window(&ctx, session, &mut panel.voice);
    let strip = super::video::draw_strip(&ctx, session, &mut videos, -PANEL_WIDTH / 2.0);

    if let Some((text, until)) = panel.toast.clone() {
        if now < until {
            egui::Area::new("zone-toast".into())
                .anchor(
                    egui::Align2::CENTER_TOP,
                    egui::vec2(-PANEL_WIDTH / 2.0, 48.0 + strip),
                )
                .show(&ctx, |ui| {
                    egui::Frame::popup(ui.style()).show(ui, |ui| ui.heading(text));
                });
        } else {
            panel.toast = None;
        }
    }
    Ok(())
}

fn chat_tab(ui: &mut egui::Ui, session: &mut Session, panel: &mut PanelState, bridge: &Bridge) {
    // Channel list.
    let mut open = None;
    ui.horizontal_wrapped(|ui| {
        for (id, view) in &session.client.chat.channels {
            let prefix = if view.info.kind == ChannelKind::Direct {
                "@"
            } else {
                "#"
            };
            let mut label = format!("{prefix}{}", view.info.name);
            if view.unread > 0 {
                label.push_str(&format!(" ({})", view.unread));
            }
            if ui
                .selectable_label(session.client.chat.active == Some(*id), label)
                .clicked()
            {
                open = Some(*id);
            }
        }
    });
    if let Some(id) = open {
        session.client.chat.open(id);
    }
    ui.separator();
    let Some(active) = session.client.chat.active else {
        ui.weak("No channels yet.");
        return;
    };
    let names: std::collections::HashMap<UserId, String> = session
        .client
        .space
        .members
        .values()
        .map(|m| (m.user_id, m.display_name.clone()))
        .collect();
    let input_height = 64.0;
    let output = egui::ScrollArea::vertical()
        .max_height(ui.available_height() - input_height)
        .stick_to_bottom(true)
        .auto_shrink([false, false])
        .show(ui, |ui| {
            if let Some(view) = session.client.chat.channels.get(&active) {
                if view.has_more && view.loaded {
                    ui.weak("Scroll up for older messages");
                }
                for m in &view.messages {
                    let name = names.get(&m.author_id).unwrap_or(&m.author_name);
                    match m.kind {
                        MessageKind::Me => {
                            ui.label(egui::RichText::new(format!("* {name} {}", m.body)).italics());
                        }
                        MessageKind::Text => {
                            ui.horizontal_wrapped(|ui| {
                                ui.strong(name);
                                ui.label(&m.body);
                            });
                        }
                    }
                }
            }
            for p in session
                .client
                .chat
                .pending
                .iter()
                .filter(|p| p.channel_id == active)
            {
                match &p.error {
                    Some(e) => ui.colored_label(
                        egui::Color32::from_rgb(224, 77, 71),
                        format!("{} — {e}", p.body),
                    ),
                    None => ui.weak(format!("{} (sending…)", p.body)),
                };
            }
            for notice in &session.client.chat.notices {
                ui.weak(notice);
            }
        });
    // At the top of a history that goes further back: fetch the next page.
    let overflowing = output.content_size.y > output.inner_rect.height();
    if overflowing
        && output.state.offset.y <= 1.0
        && let Some(before) = session.client.chat.want_older(active)
        && let Some(api) = session.api.clone()
    {
        bridge.spawn(async move {
            Reply::History(active, api.messages(active, Some(before), 50).await)
        });
    }
    ui.separator();
    let response = ui.add(
        egui::TextEdit::singleline(&mut panel.draft)
            .hint_text("Message, or /me, /nick, /status")
            .desired_width(f32::INFINITY),
    );
    if response.lost_focus() && ui.input(|i| i.key_pressed(egui::Key::Enter)) {
        let body = panel.draft.trim().to_owned();
        if !body.is_empty() {
            let msg = session.client.chat.compose(active, &body);
            session.send(msg);
            panel.draft.clear();
        }
        response.request_focus();
    }
}

fn people_tab(
    ui: &mut egui::Ui,
    session: &mut Session,
    _panel: &mut PanelState,
    bridge: &Bridge,
    route: &mut Route,
) {
    // My status.
    if let Some(me) = session.client.space.my_member().cloned() {
        ui.horizontal(|ui| {
            ui.label("You are");
            for (status, label) in [
                (Status::Available, "available"),
                (Status::Busy, "busy"),
                (Status::Away, "away"),
            ] {
                if ui.selectable_label(me.status == status, label).clicked() && me.status != status
                {
                    session.send(ClientMessage::SetStatus {
                        status,
                        text: me.status_text.clone(),
                    });
                }
            }
        });
        ui.separator();
    }
    let mut people: Vec<_> = session.client.space.members.values().cloned().collect();
    people.sort_by(|a, b| {
        a.display_name
            .to_lowercase()
            .cmp(&b.display_name.to_lowercase())
    });
    let me = session.client.space.me;
    let links = session
        .client
        .call
        .as_ref()
        .map(|c| c.links())
        .unwrap_or_default();
    egui::ScrollArea::vertical()
        .auto_shrink([false, false])
        .show(ui, |ui| {
            for m in people {
                ui.horizontal(|ui| {
                    ui.colored_label(status_color(m.status), "●");
                    let near = session.client.space.is_peer(m.user_id);
                    let name = if Some(m.user_id) == me {
                        format!("{} (you)", m.display_name)
                    } else {
                        m.display_name.clone()
                    };
                    let label = if near {
                        egui::RichText::new(name).strong()
                    } else {
                        egui::RichText::new(name)
                    };
                    ui.label(label);
                    // How the call goes: straight to them, or through the relay.
                    if let Some(route) = links.get(&m.user_id).and_then(|l| l.route)
                        && near
                    {
                        ui.weak(route.label()).on_hover_text(format!(
                            "ICE route: {} ({})",
                            route.as_str(),
                            match route {
                                crate::rtc::Route::Host => "same network",
                                crate::rtc::Route::Srflx => "direct through NAT",
                                crate::rtc::Route::Relay => "through the server's relay",
                            }
                        ));
                    }
                    if let Some(text) = &m.status_text {
                        ui.weak(text);
                    }
                    if Some(m.user_id) != me {
                        if ui.small_button("Message").clicked()
                            && let Some(api) = session.api.clone()
                        {
                            let user = m.user_id;
                            bridge.spawn(async move {
                                Reply::DirectOpened(api.open_direct(user).await)
                            });
                        }
                        if ui.small_button("Go to").clicked() {
                            route.0 = vec![TilePos::new(m.x, m.y)];
                        }
                        if near {
                            voice::peer_controls(ui, session, m.user_id);
                        }
                    }
                });
            }
        });
}
