//! The `omnisaga` CLI run against a stack, as an operator at a terminal
//! would run it: the stack's URLs, broker, topic prefix and trace viewer
//! in its environment, a token of the stack's key, and a working directory
//! without a `.omnisaga/env` of some other stack.

use std::process::Output;

use anyhow::{Context, Result};

use crate::{bin_dir, Stack, OPERATOR_SCOPES, SERVICES};

impl Stack {
    /// `omnisaga args...` sending `token`, ready to run.
    pub fn omnisaga_command(&self, args: &[&str], token: &str) -> Result<tokio::process::Command> {
        let mut cmd = tokio::process::Command::new(bin_dir()?.join("omnisaga"));
        cmd.args(args)
            .envs(self.kafka.admin_env())
            .env("KAFKA_TOPIC_PREFIX", self.topic_prefix())
            .env("TRACES_URL", &self.traces_url)
            .env("OMNISAGA_TOKEN", token)
            .env_remove("KAFKA_GROUP_SUFFIX")
            .current_dir(std::env::temp_dir());
        for (service, _) in SERVICES {
            cmd.env(format!("{}_URL", service.to_uppercase()), self.url(service));
            cmd.env(
                format!("{}_ADMIN_URL", service.to_uppercase()),
                self.admin_url(service),
            );
        }
        Ok(cmd)
    }

    /// Runs `omnisaga args...` as an operator ([`OPERATOR_SCOPES`]).
    pub async fn omnisaga(&self, args: &[&str]) -> Result<Output> {
        let token = self.token("cli-operator", &OPERATOR_SCOPES);
        self.omnisaga_as(args, &token).await
    }

    /// Runs `omnisaga args...` sending `token`.
    pub async fn omnisaga_as(&self, args: &[&str], token: &str) -> Result<Output> {
        self.omnisaga_command(args, token)?
            .output()
            .await
            .context("Failed to run omnisaga (build it with `cargo build --bins`)")
    }
}
