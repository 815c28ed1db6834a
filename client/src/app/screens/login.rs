//! The login screen: where the server is ("This computer" or an address), and
//! who you are (guest name, or an account). Remembered settings and the
//! `--server`/`--guest` flags skip it.

use super::Screen;
use crate::app::args::Args;
use crate::app::bridge::{Bridge, Hosted, HostedInfo, Reply, ReplyMessage, Session};
use crate::app::host::{HostError, HostedServer};
use crate::core::api::{Api, normalize_server};
use crate::core::settings;
use bevy::prelude::*;
use bevy_egui::{EguiContexts, EguiPrimaryContextPass, egui};
use std::sync::{Arc, Mutex};

#[derive(Resource, Default)]
struct LoginForm {
    remote: bool,
    address: String,
    name: String,
    username: String,
    password: String,
    register: bool,
    busy: bool,
    /// The server to log in to, once known (hosted or typed).
    server: Option<String>,
    auto_guest: Option<String>,
    tried_resume: bool,
}

pub(super) fn plugin(app: &mut App) {
    app.init_resource::<LoginForm>();
    app.init_resource::<SharedHost>();
    app.add_systems(OnEnter(Screen::Login), start_login);
    app.add_systems(Update, handle_login_replies.run_if(in_state(Screen::Login)));
    app.add_systems(
        EguiPrimaryContextPass,
        draw_login.run_if(in_state(Screen::Login)),
    );
}

/// The hosted server, filled in by the task that starts it.
#[derive(Resource, Default, Clone)]
struct SharedHost(Arc<Mutex<Option<HostedServer>>>);

fn start_login(
    mut form: ResMut<LoginForm>,
    args: Res<Args>,
    session: Res<Session>,
    bridge: Res<Bridge>,
    host: Res<SharedHost>,
) {
    let saved = &session.settings;
    form.name = args
        .guest
        .clone()
        .or_else(|| saved.display_name.clone())
        .unwrap_or_default();
    form.auto_guest.clone_from(&args.guest);
    let server = args.server.clone().or_else(|| saved.server.clone());
    form.remote = server.is_some();
    form.address = server.clone().unwrap_or_default();
    match server {
        Some(address) => form.server = Some(normalize_server(&address)),
        None if session.hosted.is_some() => {
            form.server = session.hosted.as_ref().map(|h| h.local_url.clone());
        }
        None => start_hosting(&bridge, &host, &mut form),
    }
}

fn start_hosting(bridge: &Bridge, host: &SharedHost, form: &mut LoginForm) {
    form.busy = true;
    let slot = host.0.clone();
    bridge.spawn(async move {
        let Some(dir) = settings::data_dir() else {
            return Reply::Hosted(Err(HostError::NoDataDir));
        };
        match HostedServer::start(dir).await {
            Ok(server) => {
                let urls = (server.local_url.clone(), server.lan_urls.clone());
                if let Ok(mut slot) = slot.lock() {
                    *slot = Some(server);
                }
                Reply::Hosted(Ok(urls))
            }
            Err(e) => Reply::Hosted(Err(e.into())),
        }
    });
}

fn log_in_as_guest(bridge: &Bridge, server: String, name: String) {
    bridge.spawn(async move {
        let result = Api::new(&server).guest(&name).await;
        Reply::LoggedIn { server, result }
    });
}

#[allow(clippy::too_many_arguments)]
fn handle_login_replies(
    mut replies: MessageReader<ReplyMessage>,
    mut form: ResMut<LoginForm>,
    mut session: ResMut<Session>,
    bridge: Res<Bridge>,
    host: Res<SharedHost>,
    mut hosted: ResMut<Hosted>,
    mut next: ResMut<NextState<Screen>>,
) {
    for ReplyMessage(reply) in replies.read() {
        match reply {
            Reply::Hosted(Ok((local, lan))) => {
                form.busy = false;
                form.server = Some(local.clone());
                session.hosted = Some(HostedInfo {
                    local_url: local.clone(),
                    lan_urls: lan.clone(),
                });
                if let Ok(mut slot) = host.0.lock() {
                    hosted.0 = slot.take();
                }
            }
            Reply::Hosted(Err(e)) => {
                form.busy = false;
                session.error = Some(format!("Could not start a server on this computer: {e}"));
            }
            Reply::LoggedIn { server, result } => {
                form.busy = false;
                match result {
                    Ok(auth) => {
                        let server = server.clone();
                        let settings = &mut session.settings;
                        settings.server = form.remote.then(|| server.clone());
                        settings.display_name = Some(auth.user.display_name.clone());
                        settings.token = Some(auth.token.clone());
                        settings.token_server = Some(server.clone());
                        if let Err(e) = settings.save() {
                            warn!("cannot save settings: {e}");
                        }
                        session.api = Some(Api::new(&server).with_token(auth.token.clone()));
                        session.user = Some(auth.user.clone());
                        session.error = None;
                        session.connect(&bridge);
                        next.set(Screen::Spaces);
                    }
                    Err(e) => session.error = Some(e.to_string()),
                }
            }
            Reply::Resumed {
                server,
                token,
                result,
            } => {
                form.busy = false;
                match result {
                    Ok(user) => {
                        session.api = Some(Api::new(server).with_token(token.clone()));
                        session.user = Some(user.clone());
                        session.connect(&bridge);
                        next.set(Screen::Spaces);
                    }
                    // The token is no longer valid: show the form.
                    Err(e) if e.is_unauthorized() => {}
                    Err(e) => session.error = Some(e.to_string()),
                }
            }
            _ => {}
        }
    }
    // Once the server is known: resume a remembered session, or log in as the
    // `--guest` given on the command line.
    if form.busy || session.api.is_some() {
        return;
    }
    let Some(server) = form.server.clone() else {
        return;
    };
    if let Some(name) = form.auto_guest.take() {
        form.busy = true;
        log_in_as_guest(&bridge, server, name);
    } else if !form.tried_resume {
        form.tried_resume = true;
        if let Some(token) = session.settings.token_for(&server).map(str::to_owned) {
            form.busy = true;
            bridge.spawn(async move {
                let result = Api::new(&server).with_token(token.clone()).me().await;
                Reply::Resumed {
                    server,
                    token,
                    result,
                }
            });
        }
    }
}

fn draw_login(
    mut contexts: EguiContexts,
    mut form: ResMut<LoginForm>,
    mut session: ResMut<Session>,
    bridge: Res<Bridge>,
    host: Res<SharedHost>,
) -> Result {
    let ctx = contexts.ctx_mut()?;
    egui::Window::new("Welcome to Hallway")
        .collapsible(false)
        .resizable(false)
        .anchor(egui::Align2::CENTER_CENTER, egui::vec2(0.0, 0.0))
        .show(ctx, |ui| {
            ui.set_width(340.0);
            ui.heading("Where is your office?");
            let before = form.remote;
            ui.horizontal(|ui| {
                ui.radio_value(&mut form.remote, false, "This computer");
                ui.radio_value(&mut form.remote, true, "A server");
            });
            if form.remote {
                ui.horizontal(|ui| {
                    ui.label("Address");
                    ui.text_edit_singleline(&mut form.address);
                });
            } else if let Some(h) = &session.hosted {
                ui.label(format!(
                    "Running here. Others can join at: {}",
                    join_addresses(h)
                ));
            } else if form.busy {
                ui.label("Starting a server on this computer…");
            }
            if before != form.remote && !form.remote && session.hosted.is_none() && !form.busy {
                start_hosting(&bridge, &host, &mut form);
            }
            ui.separator();
            ui.heading("Who are you?");
            ui.checkbox(
                &mut form.register,
                "Use an account (otherwise, join as a guest)",
            );
            if form.register {
                ui.horizontal(|ui| {
                    ui.label("Username");
                    ui.text_edit_singleline(&mut form.username);
                });
                ui.horizontal(|ui| {
                    ui.label("Password");
                    ui.add(egui::TextEdit::singleline(&mut form.password).password(true));
                });
            }
            ui.horizontal(|ui| {
                ui.label("Name");
                ui.text_edit_singleline(&mut form.name);
            });
            let server = if form.remote {
                (!form.address.trim().is_empty()).then(|| normalize_server(&form.address))
            } else {
                session.hosted.as_ref().map(|h| h.local_url.clone())
            };
            ui.add_space(6.0);
            let ready = server.is_some() && !form.busy && !form.name.trim().is_empty();
            ui.horizontal(|ui| {
                let guest =
                    ui.add_enabled(ready && !form.register, egui::Button::new("Join as guest"));
                let login = ui.add_enabled(ready && form.register, egui::Button::new("Log in"));
                let register =
                    ui.add_enabled(ready && form.register, egui::Button::new("Register"));
                let Some(server) = server.clone() else { return };
                if guest.clicked() {
                    form.busy = true;
                    session.error = None;
                    log_in_as_guest(&bridge, server, form.name.trim().to_owned());
                } else if login.clicked() || register.clicked() {
                    form.busy = true;
                    session.error = None;
                    let (user, pass, name) = (
                        form.username.clone(),
                        form.password.clone(),
                        form.name.clone(),
                    );
                    let is_register = register.clicked();
                    bridge.spawn(async move {
                        let api = Api::new(&server);
                        let result = if is_register {
                            api.register(&user, &pass, &name).await
                        } else {
                            api.login(&user, &pass).await
                        };
                        Reply::LoggedIn { server, result }
                    });
                }
            });
            if let Some(error) = &session.error {
                ui.colored_label(egui::Color32::from_rgb(200, 60, 60), error);
            }
        });
    Ok(())
}

pub fn join_addresses(h: &HostedInfo) -> String {
    if h.lan_urls.is_empty() {
        h.local_url.clone()
    } else {
        h.lan_urls.join(", ")
    }
}
