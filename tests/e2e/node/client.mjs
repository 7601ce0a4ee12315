// Drives the official MCP TypeScript SDK client through the whole OAuth flow, for
// tests/e2e/test_mcp_sdk.py. Usage: node client.mjs <mcp url> <redirect uri> <seconds to wait>
//
// Registers as a public client (token_endpoint_auth_method "none"), as the MCP Inspector does.
// Speaks JSON lines: prints {"event": "registered" | "authorize" | "done" | "error", ...} on
// stdout; after "authorize" it reads the callback's query parameters as one JSON line on stdin
// (the test plays the person who signs in and approves).
import { randomBytes } from "node:crypto";
import { createInterface } from "node:readline";

import { Client } from "@modelcontextprotocol/sdk/client/index.js";
import { UnauthorizedError } from "@modelcontextprotocol/sdk/client/auth.js";
import { StreamableHTTPClientTransport } from "@modelcontextprotocol/sdk/client/streamableHttp.js";

const [mcpUrl, redirectUri, waitSeconds] = process.argv.slice(2);
const emit = (event, data = {}) => process.stdout.write(JSON.stringify({ event, ...data }) + "\n");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();

class TestProvider {
  constructor() {
    this.client = undefined;
    this.saved = [];
    this.verifier = undefined;
    this.lastState = undefined;
  }
  get redirectUrl() {
    return redirectUri;
  }
  get clientMetadata() {
    return {
      client_name: "typescript sdk test",
      redirect_uris: [redirectUri],
      grant_types: ["authorization_code", "refresh_token"],
      response_types: ["code"],
      token_endpoint_auth_method: "none",
    };
  }
  state() {
    this.lastState = randomBytes(16).toString("hex");
    return this.lastState;
  }
  clientInformation() {
    return this.client;
  }
  saveClientInformation(info) {
    this.client = info;
    emit("registered", { client: info });
  }
  tokens() {
    return this.saved.at(-1);
  }
  saveTokens(tokens) {
    this.saved.push(tokens);
  }
  redirectToAuthorization(url) {
    emit("authorize", { url: url.toString() });
  }
  saveCodeVerifier(verifier) {
    this.verifier = verifier;
  }
  codeVerifier() {
    return this.verifier;
  }
}

const provider = new TestProvider();

async function connect() {
  for (let attempt = 0; attempt < 2; attempt++) {
    const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
    const client = new Client({ name: "typescript-sdk-test", version: "1.0.0" });
    try {
      await client.connect(transport);
      return { client, transport };
    } catch (error) {
      if (!(error instanceof UnauthorizedError) || attempt > 0) throw error;
      const { value } = await lines.next();
      const params = JSON.parse(value);
      if (params.state !== provider.lastState) throw new Error(`state mismatch: ${params.state}`);
      if (!params.code) throw new Error(`no code: ${value}`);
      await transport.finishAuth(params.code);
    }
  }
  throw new Error("could not connect");
}

const whoami = async (client) => (await client.callTool({ name: "whoami", arguments: {} })).structuredContent;

try {
  const { client, transport } = await connect();
  const tools = (await client.listTools()).tools.map((t) => t.name);
  const first = await whoami(client);
  const concurrent = await Promise.all([1, 2, 3, 4].map(() => whoami(client)));
  const before = provider.tokens().access_token;
  // Wait until the access token is refused (expired); the SDK refreshes on that 401.
  await new Promise((resolve) => setTimeout(resolve, Number(waitSeconds) * 1000));
  const afterRefresh = await whoami(client);
  emit("done", {
    tools,
    first,
    concurrent,
    after_refresh: afterRefresh,
    tokens: provider.saved.length,
    refreshed_access_token_differs: provider.tokens().access_token !== before,
    protocolVersion: transport.protocolVersion,
    sessionId: transport.sessionId,
  });
  await transport.terminateSession();
  await client.close();
  process.exit(0);
} catch (error) {
  emit("error", { message: String(error?.stack ?? error) });
  process.exit(1);
}
