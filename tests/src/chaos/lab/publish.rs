//! What the lab hands the balancers: images that trust its operator key, and signed configs
//! with growing serials for the config server to serve.

use std::path::PathBuf;

use super::{
    config_file, config_with_priority, member_index, write_replacing, Lab, Member, Services,
    MEMBERS, NEXT_RELEASE, RELEASE_FILE,
};
use crate::appliance::Image;
use crate::fresh::{self, ImageKind};

impl Lab {
    /// The public half of the operator key (for the image).
    pub fn public_key(&self) -> PathBuf {
        PathBuf::from(format!("{}.pub", self.key.display()))
    }

    /// The test image with this lab's operator key (built into `<target>/lb-test-image-chaos`).
    pub fn image(&self) -> Result<Image, String> {
        let dir = crate::artifacts::target_dir().join("lb-test-image-chaos");
        let args = vec![format!("--trusted-keys {}", self.public_key().display())];
        Image::in_dir(fresh::variant(ImageKind::Test, &dir, &args)?)
    }

    /// The image a rolling upgrade moves to: the test image with this lab's key and one more
    /// file, [`RELEASE_FILE`], naming the release (built into
    /// `<target>/lb-test-image-chaos-next`). A different initramfs, fetched and booted like a
    /// new release; its binaries are those of the source tree.
    pub fn next_image(&self) -> Result<Image, String> {
        let target = crate::artifacts::target_dir();
        let note = target.join("chaos-next-release");
        write_replacing(&note, NEXT_RELEASE.as_bytes())?;
        let dir = target.join("lb-test-image-chaos-next");
        let args = vec![
            format!("--trusted-keys {}", self.public_key().display()),
            format!("--add {}:{RELEASE_FILE}", note.display()),
        ];
        Image::in_dir(fresh::variant(ImageKind::Test, &dir, &args)?)
    }

    pub(super) fn configs(&self) -> PathBuf {
        self.dir.path().join("configs")
    }

    /// Publishes a signed config for `m` with the next serial; returns the serial.
    pub fn publish(&mut self, m: &Member, services: &Services) -> Result<u64, String> {
        let i = member_index(m);
        self.serials[i] += 1;
        let serial = self.serials[i];
        let priority = self.priorities[i].unwrap_or(m.priority);
        let text = config_with_priority(
            m,
            priority,
            serial,
            services,
            self.setup.vrrp,
            self.setup.layout,
        );
        self.publish_raw(m, &text, true)?;
        Ok(serial)
    }

    /// Publishes `m`'s config with `priority` instead of its own (None: its own again), and
    /// keeps it for later publications.
    pub fn set_priority(
        &mut self,
        m: &Member,
        priority: Option<u8>,
        services: &Services,
    ) -> Result<u64, String> {
        self.priorities[member_index(m)] = priority;
        self.publish(m, services)
    }

    /// `m`'s config with `serial` as this lab publishes it.
    pub fn config_for(&self, m: &Member, serial: u64, services: &Services) -> String {
        let priority = self.priorities[member_index(m)].unwrap_or(m.priority);
        config_with_priority(
            m,
            priority,
            serial,
            services,
            self.setup.vrrp,
            self.setup.layout,
        )
    }

    /// Publishes `services` for both members.
    pub fn publish_all(&mut self, services: &Services) -> Result<(), String> {
        for m in &MEMBERS {
            self.publish(m, services)?;
        }
        Ok(())
    }

    /// The serial the next [`Lab::publish`] for `m` will not reuse (the last one published).
    pub fn serial(&self, m: &Member) -> u64 {
        self.serials[member_index(m)]
    }

    /// Writes `text` as `m`'s config, signed (signature first, each file replaced by rename)
    /// or with its signature removed.
    pub fn publish_raw(&self, m: &Member, text: &str, signed: bool) -> Result<(), String> {
        let name = config_file(m);
        let staging = self.dir.path().join(format!("staging-{name}"));
        std::fs::write(&staging, text).map_err(|e| e.to_string())?;
        let sig_path = self.configs().join(format!("{name}.sig"));
        if signed {
            let sig = crate::operator_keys::sign(&self.key, "lb-config", &staging);
            write_replacing(&sig_path, &sig)?;
        } else {
            let _ = std::fs::remove_file(&sig_path);
        }
        write_replacing(&self.configs().join(&name), text.as_bytes())
    }
}
