// The page under test: the published OFREP web provider, unchanged, showing one flag's value.
// Its configuration (server, token, flag, context, poll interval) comes from the page itself.
import { OFREPWebProvider } from "@openfeature/ofrep-web-provider";
import { OpenFeature, ProviderEvents } from "@openfeature/web-sdk";

const config = JSON.parse(document.getElementById("config").textContent);
const output = document.getElementById("value");
const client = OpenFeature.getClient();

function render() {
  const details = client.getBooleanDetails(config.flag, false);
  output.textContent = `${details.value} (${details.reason}, variant ${details.variant})`;
  output.dataset.value = String(details.value);
  output.dataset.reason = String(details.reason);
  output.dataset.renders = String(Number(output.dataset.renders || 0) + 1);
}

client.addHandler(ProviderEvents.Ready, render);
client.addHandler(ProviderEvents.ConfigurationChanged, render);
// A failed poll only makes the provider stale; say so loudly, the test fails on console errors.
client.addHandler(ProviderEvents.Error, (event) => console.error("provider error", event.message));
client.addHandler(ProviderEvents.Stale, (event) => console.error("provider stale", event.message));

const provider = new OFREPWebProvider({
  baseUrl: config.baseUrl,
  headers: [["Authorization", `Bearer ${config.token}`]],
  pollInterval: config.pollInterval,
  changeDetection: "polling",
  cacheMode: "disabled",
});
OpenFeature.setProviderAndWait(provider, config.context).catch((error) =>
  console.error("provider did not start", String(error)),
);
