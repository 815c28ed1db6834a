//! What the app remembers between runs: which server, the name, the token.
//! Stored as JSON in the OS config directory (`HALLWAY_CONFIG_DIR` overrides it).

use crate::media::processing::{ProcessingConfig, Suppressor};
use hallway_shared::SpaceId;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Settings {
    /// The server address; `None` means "This computer" (a server hosted by the app).
    #[serde(default)]
    pub server: Option<String>,
    #[serde(default)]
    pub display_name: Option<String>,
    /// The session token and the server it belongs to.
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub token_server: Option<String>,
    #[serde(default)]
    pub last_space: Option<SpaceId>,
    #[serde(default)]
    pub audio: AudioSettings,
    #[serde(default)]
    pub video: VideoSettings,
}

/// Camera preferences.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct VideoSettings {
    /// Off until the user turns it on; then remembered.
    pub camera_on: bool,
    /// The camera by name; `None` is the first one found.
    pub camera: Option<String>,
}

/// Voice preferences.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct AudioSettings {
    /// Microphone and speaker by name; `None` is the system default.
    pub input_device: Option<String>,
    pub output_device: Option<String>,
    /// Removes what the speaker plays from the microphone, so people on
    /// laptop speakers don't send everyone's voice back.
    pub echo_cancellation: bool,
    pub noise_suppression: bool,
    /// Which suppressor, when it is on.
    pub suppressor: Suppressor,
    /// Brings the voice to a steady level (AGC2).
    pub auto_gain: bool,
    /// Notification sounds: someone joins or leaves your conversation, a
    /// direct message or mention, entering a meeting room.
    pub sounds: bool,
    pub push_to_talk: bool,
    pub muted: bool,
    /// Per-user volume (1.0 = as is), by user id.
    pub volumes: std::collections::BTreeMap<i64, f32>,
    /// Connect to peers only through the server's relay, so they never
    /// learn this computer's address ("Always relay (hide my address)").
    pub always_relay: bool,
}

impl Default for AudioSettings {
    fn default() -> Self {
        AudioSettings {
            input_device: None,
            output_device: None,
            echo_cancellation: true,
            noise_suppression: true,
            suppressor: Suppressor::default(),
            auto_gain: true,
            sounds: true,
            push_to_talk: false,
            muted: false,
            volumes: Default::default(),
            always_relay: false,
        }
    }
}

impl AudioSettings {
    /// The capture processing these settings ask for.
    pub fn processing(&self) -> ProcessingConfig {
        ProcessingConfig {
            echo_cancellation: self.echo_cancellation,
            noise_suppression: self.noise_suppression.then_some(self.suppressor),
            auto_gain: self.auto_gain,
        }
    }
}

fn project_dirs() -> Option<directories::ProjectDirs> {
    directories::ProjectDirs::from("org", "Hallway", "Hallway")
}

/// Where settings live.
pub fn config_dir() -> Option<PathBuf> {
    std::env::var_os("HALLWAY_CONFIG_DIR")
        .map(PathBuf::from)
        .or_else(|| project_dirs().map(|d| d.config_dir().to_owned()))
}

/// Where a server hosted by the app keeps its database.
pub fn data_dir() -> Option<PathBuf> {
    std::env::var_os("HALLWAY_DATA_DIR")
        .map(PathBuf::from)
        .or_else(|| project_dirs().map(|d| d.data_dir().to_owned()))
}

impl Settings {
    fn path() -> Option<PathBuf> {
        config_dir().map(|d| d.join("settings.json"))
    }

    /// The saved settings, or defaults if there are none or they are unreadable.
    pub fn load() -> Settings {
        Self::path()
            .map(|p| Self::load_from(&p))
            .unwrap_or_default()
    }

    pub fn load_from(path: &std::path::Path) -> Settings {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    pub fn save(&self) -> std::io::Result<()> {
        match Self::path() {
            Some(path) => self.save_to(&path),
            None => Ok(()),
        }
    }

    pub fn save_to(&self, path: &std::path::Path) -> std::io::Result<()> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let json = serde_json::to_vec_pretty(self).map_err(std::io::Error::other)?;
        // Write then rename, so a crash never leaves half a file.
        let tmp = path.with_extension("json.tmp");
        std::fs::write(&tmp, json)?;
        // It holds a session token: readable by this user only.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600))?;
        }
        std::fs::rename(tmp, path)
    }

    /// The remembered token, if it belongs to `server`.
    pub fn token_for(&self, server: &str) -> Option<&str> {
        (self.token_server.as_deref() == Some(server))
            .then_some(self.token.as_deref())
            .flatten()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_survive_a_restart_and_tokens_stay_with_their_server() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/settings.json");
        assert_eq!(
            Settings::load_from(&path),
            Settings::default(),
            "nothing saved yet"
        );
        let s = Settings {
            server: Some("http://10.0.0.5:8080".into()),
            display_name: Some("Ann".into()),
            token: Some("tok".into()),
            token_server: Some("http://10.0.0.5:8080".into()),
            last_space: Some(SpaceId(3)),
            audio: AudioSettings {
                input_device: Some("USB Headset".into()),
                push_to_talk: true,
                volumes: [(7, 1.5)].into_iter().collect(),
                always_relay: true,
                ..AudioSettings::default()
            },
            video: VideoSettings {
                camera_on: true,
                camera: Some("HD Webcam (0)".into()),
            },
        };
        s.save_to(&path).unwrap();
        let back = Settings::load_from(&path);
        assert_eq!(back, s);
        assert_eq!(back.token_for("http://10.0.0.5:8080"), Some("tok"));
        assert_eq!(back.token_for("http://127.0.0.1:8080"), None);
        // A file from before voice existed still loads, with voice defaults.
        std::fs::write(&path, r#"{"server": null, "display_name": "Bo"}"#).unwrap();
        let old = Settings::load_from(&path);
        assert_eq!(old.display_name.as_deref(), Some("Bo"));
        assert!(old.audio.noise_suppression && !old.audio.muted);
        assert!(!old.audio.always_relay, "relaying only is off by default");
        assert!(!old.video.camera_on, "the camera starts off");
        std::fs::write(&path, "{not json").unwrap();
        assert_eq!(
            Settings::load_from(&path),
            Settings::default(),
            "a broken file is ignored"
        );
    }
}
