//! Real cameras through nokhwa (V4L2 on Linux, Media Foundation on Windows,
//! AVFoundation on macOS), delivering YUYV.

use super::{CameraError, FrameSource, Tier};
use crate::media::video::{VideoFrame, yuyv_to_rgb};
use std::time::{Duration, Instant};

/// The cameras the system lists, by name (empty when there are none or the
/// camera API is unavailable).
pub fn cameras() -> Vec<String> {
    match nokhwa::query(nokhwa::utils::ApiBackend::Auto) {
        Ok(list) => list.iter().map(camera_name).collect(),
        Err(e) => {
            tracing::debug!("listing cameras: {e}");
            Vec::new()
        }
    }
}

fn camera_name(info: &nokhwa::utils::CameraInfo) -> String {
    format!("{} ({})", info.human_name(), info.index())
}

/// A real camera through nokhwa, delivering YUYV (every UVC webcam offers
/// it; MJPEG would need a JPEG decoder).
pub(super) struct NativeCamera {
    camera: nokhwa::Camera,
    name: String,
    /// When the next picture is due at the tier's rate.
    due: Option<Instant>,
}

impl NativeCamera {
    pub(super) fn open(name: Option<&str>) -> Result<NativeCamera, CameraError> {
        use nokhwa::utils::{
            ApiBackend, CameraFormat, FrameFormat, RequestedFormat, RequestedFormatType, Resolution,
        };
        let list = nokhwa::query(ApiBackend::Auto).map_err(CameraError::List)?;
        let candidates: Vec<_> = match name {
            Some(n) => list.iter().filter(|i| camera_name(i) == n).collect(),
            None => list.iter().collect(),
        };
        if candidates.is_empty() {
            return Err(match name {
                Some(n) if !list.is_empty() => CameraError::NotFound(n.to_owned()),
                _ => CameraError::NoCamera,
            });
        }
        let wanted = CameraFormat::new(Resolution::new(640, 480), FrameFormat::YUYV, 30);
        let mut last_error = CameraError::NoCamera;
        // UVC cameras also list metadata nodes that cannot stream: skip them.
        for info in candidates {
            for request in [
                RequestedFormatType::Closest(wanted),
                RequestedFormatType::HighestFrameRate(30),
                RequestedFormatType::None,
            ] {
                let format = RequestedFormat::with_formats(request, &[FrameFormat::YUYV]);
                match nokhwa::Camera::new(info.index().clone(), format)
                    .and_then(|mut c| c.open_stream().map(|()| c))
                {
                    Ok(camera) => {
                        return Ok(NativeCamera {
                            camera,
                            name: camera_name(info),
                            due: None,
                        });
                    }
                    Err(source) => {
                        last_error = CameraError::Camera {
                            camera: camera_name(info),
                            source,
                        }
                    }
                }
            }
        }
        Err(last_error)
    }
}

impl FrameSource for NativeCamera {
    fn next_frame(&mut self, tier: Tier) -> Result<VideoFrame, CameraError> {
        let period = Duration::from_secs(1) / tier.fps.max(1);
        loop {
            let buffer = self.camera.frame().map_err(|source| CameraError::Camera {
                camera: self.name.clone(),
                source,
            })?;
            // Drop pictures beyond the tier's rate, on a schedule (so 30 fps
            // from the camera gives 20 on the 20 fps tier, not 15), with
            // 5 ms of slack for the camera's own jitter.
            let now = Instant::now();
            if self
                .due
                .is_some_and(|due| now + Duration::from_millis(5) < due)
            {
                continue;
            }
            let next = self.due.unwrap_or(now) + period;
            // Behind (a camera slower than the tier, or a stall): start
            // afresh rather than catch up.
            self.due = Some(if next < now { now + period } else { next });
            let res = buffer.resolution();
            let (w, h) = (res.width() as usize, res.height() as usize);
            return yuyv_to_rgb(buffer.buffer(), w, h).ok_or_else(|| CameraError::Picture {
                camera: self.name.clone(),
                format: format!("{:?}", buffer.source_frame_format()),
                bytes: buffer.buffer().len(),
                width: w,
                height: h,
            });
        }
    }

    fn name(&self) -> String {
        self.name.clone()
    }
}
