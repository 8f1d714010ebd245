// Drive a Binder link's /build stream with BinderHub's own client, as a page would:
//   node drive.mjs <build endpoint URL> <provider/spec> <token> [query of the link]
// Prints each event as a JSON line, then {"redirect": <where a browser would go>}.
globalThis.window = globalThis; // the client was written for browsers
globalThis.document = { hidden: false, cookie: "", addEventListener() {},
                        removeEventListener() {} };

const { BinderRepository } = await import("@jupyterhub/binderhub-client/client.js");
const { LaunchSpec } = await import("@jupyterhub/binderhub-client/spec.js");

const [endpoint, spec, token, query = ""] = process.argv.slice(2);
const repo = new BinderRepository(spec, new URL(endpoint), { apiToken: token });
for await (const event of repo.fetch()) {
  console.log(JSON.stringify(event));
  if (event.phase === "ready") {
    const launch = LaunchSpec.fromSearchParams(new URLSearchParams(query));
    const redirect = launch.getJupyterServerRedirectUrl(new URL(event.url), event.token);
    console.log(JSON.stringify({ redirect: redirect.href }));
  }
  if (event.phase === "ready" || event.phase === "failed") {
    repo.close();
    break;
  }
}
