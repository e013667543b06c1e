import { defineConfig } from "vite";

// The build goes into the Python package, so `pip install` alone serves the studio.
// `npm run dev` proxies the API to a studio server on 127.0.0.1:8080.
export default defineConfig({
  base: "/",
  build: {
    outDir: "../engine/studio/static",
    emptyOutDir: true,
    assetsDir: "assets",
    sourcemap: false,
    chunkSizeWarningLimit: 1024,
    rollupOptions: {
      onwarn(warning, warn) {
        // React Flow marks its module "use client" (for server components): harmless here.
        if (warning.code === "MODULE_LEVEL_DIRECTIVE") return;
        warn(warning);
      },
    },
  },
  server: {
    proxy: { "/api": { target: "http://127.0.0.1:8080", changeOrigin: false } },
  },
});
