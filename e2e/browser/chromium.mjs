// Debian's headless Chromium for the e2e drivers (watch, latency, dashboard,
// dvr, recording): one place for the launch flags this machine needs (no
// sandbox as root, no GPU, no QUIC, no background networking: the network is
// closed; autoplay without a gesture), a fresh profile that is always
// removed, and a stop on SIGTERM/SIGINT (the Rust side stops drivers by PID).
//
//   const { context, stop } = await launch({ viewport: { width: 1280, height: 900 } });
//   ... await stop(0);
import { chromium } from "playwright-core";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

export async function launch(options = {}) {
  const profile = mkdtempSync(join(tmpdir(), "dionysia-chromium-"));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    headless: true,
    // Test pages only, on loopback: the edge's HTTPS listener runs with a
    // self-signed pair made by the test.
    ignoreHTTPSErrors: true,
    args: [
      "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
      "--disable-background-networking", "--disable-component-update", "--disable-sync",
      "--autoplay-policy=no-user-gesture-required",
    ],
    ...options,
  });
  const stop = async (code) => {
    await context.close().catch(() => {});
    rmSync(profile, { recursive: true, force: true });
    process.exit(code);
  };
  process.on("SIGTERM", () => stop(0));
  process.on("SIGINT", () => stop(0));
  return { context, stop };
}
