//! The spaces screen: the spaces you can enter, creating one (public or
//! private), and joining a private one by its invite code. `--space` or the
//! space you were last in skip it.

use super::{Entering, Screen};
use crate::app::args::Args;
use crate::app::bridge::{Bridge, Reply, ReplyMessage, Session};
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use hallway_shared::SpaceId;
use hallway_shared::protocol::SpaceInfo;

#[derive(Resource, Default)]
struct SpacesForm {
    spaces: Vec<SpaceInfo>,
    new_name: String,
    new_private: bool,
    invite: String,
    busy: bool,
    /// `--space` or the last space, tried once.
    auto: Option<String>,
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<SpacesForm>();
    app.add_systems(OnEnter(Screen::Spaces), load_spaces);
    app.add_systems(
        Update,
        handle_spaces_replies.run_if(in_state(Screen::Spaces)),
    );
    app.add_systems(
        EguiPrimaryContextPass,
        draw_spaces.run_if(in_state(Screen::Spaces)),
    );
}

fn fetch(bridge: &Bridge, session: &Session) {
    let Some(api) = session.api.clone() else {
        return;
    };
    bridge.spawn(async move { Reply::Spaces(api.spaces().await) });
}

fn load_spaces(
    mut form: ResMut<SpacesForm>,
    args: Res<Args>,
    session: Res<Session>,
    bridge: Res<Bridge>,
) {
    form.busy = true;
    if form.auto.is_none() {
        form.auto = args
            .space
            .clone()
            .or_else(|| session.settings.last_space.map(|s| s.to_string()));
    }
    fetch(&bridge, &session);
}

fn enter(
    space: SpaceId,
    commands: &mut Commands,
    session: &mut Session,
    next: &mut NextState<Screen>,
) {
    commands.insert_resource(Entering(space));
    session.settings.last_space = Some(space);
    if let Err(e) = session.settings.save() {
        warn!("cannot save settings: {e}");
    }
    next.set(Screen::Office);
}

fn handle_spaces_replies(
    mut commands: Commands,
    mut replies: MessageReader<ReplyMessage>,
    mut form: ResMut<SpacesForm>,
    mut session: ResMut<Session>,
    bridge: Res<Bridge>,
    mut next: ResMut<NextState<Screen>>,
) {
    for ReplyMessage(reply) in replies.read() {
        match reply {
            Reply::Spaces(Ok(spaces)) => {
                form.busy = false;
                form.spaces.clone_from(spaces);
                if let Some(wanted) = form.auto.take() {
                    let found = spaces.iter().find(|s| {
                        s.id.to_string() == wanted || s.name.eq_ignore_ascii_case(&wanted)
                    });
                    match found {
                        Some(space) => enter(space.id, &mut commands, &mut session, &mut next),
                        None => session.error = Some(format!("No space called {wanted:?}.")),
                    }
                }
            }
            Reply::SpaceCreated(Ok(space)) => {
                form.busy = false;
                enter(space.id, &mut commands, &mut session, &mut next);
            }
            Reply::Spaces(Err(e)) | Reply::SpaceCreated(Err(e)) => {
                form.busy = false;
                session.error = Some(e.to_string());
                if e.is_unauthorized() {
                    fetch(&bridge, &session);
                }
            }
            _ => {}
        }
    }
}

fn draw_spaces(
    mut contexts: EguiContexts,
    mut commands: Commands,
    mut form: ResMut<SpacesForm>,
    mut session: ResMut<Session>,
    bridge: Res<Bridge>,
    mut next: ResMut<NextState<Screen>>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    let mut chosen = None;
    egui::Window::new("Spaces")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::vec2(0.0, 0.0))
        .show(ctx, |ui| {
            ui.set_width(380.0);
            if let Some(user) = &session.user {
                ui.label(format!("Signed in as {}", user.display_name));
            }
            ui.separator();
            if form.busy && form.spaces.is_empty() {
                ui.label("Loading…");
            }
            for space in &form.spaces {
                ui.horizontal(|ui| {
                    let lock = if space.private { "🔒 " } else { "" };
                    ui.label(format!("{lock}{}", space.name));
                    ui.weak(format!("{} here", space.online));
                    if ui.button("Enter").clicked() {
                        chosen = Some(space.id);
                    }
                    if let Some(code) = &space.invite_code {
                        ui.weak(format!("invite: {code}"));
                    }
                });
            }
            ui.separator();
            ui.horizontal(|ui| {
                ui.text_edit_singleline(&mut form.new_name);
                ui.checkbox(&mut form.new_private, "private");
                let ok = !form.new_name.trim().is_empty() && !form.busy;
                if ui.add_enabled(ok, egui::Button::new("Create")).clicked() {
                    form.busy = true;
                    let (name, private) = (form.new_name.trim().to_owned(), form.new_private);
                    if let Some(api) = session.api.clone() {
                        bridge.spawn(async move {
                            Reply::SpaceCreated(api.create_space(&name, private).await)
                        });
                    }
                }
            });
            ui.horizontal(|ui| {
                ui.label("Invite code");
                ui.text_edit_singleline(&mut form.invite);
                let ok = !form.invite.trim().is_empty() && !form.busy;
                if ui.add_enabled(ok, egui::Button::new("Join")).clicked() {
                    form.busy = true;
                    let code = form.invite.trim().to_owned();
                    if let Some(api) = session.api.clone() {
                        bridge.spawn(async move {
                            Reply::SpaceCreated(api.join_by_invite(&code).await)
                        });
                    }
                }
            });
            if let Some(error) = &session.error {
                ui.colored_label(egui::Color32::from_rgb(200, 60, 60), error);
            }
        });
    if let Some(space) = chosen {
        enter(space, &mut commands, &mut session, &mut next);
    }
    Ok(())
}
