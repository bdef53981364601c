"use strict";
/**
 * A retail partner's shop counter, written as a partner writes it from the CRM's published protos:
 * it calls the gateway's partner address over mutual TLS with the shop's client certificate, finds
 * a customer by phone number, reserves a handset against their loyalty points at its own shop,
 * hands it over (capture), and checks that another partner's customer is refused.
 *
 * Environment:
 *   GATEWAY_PARTNER_ADDRESS   host:port of the gateway's partner (mutual TLS) address
 *   PARTNER_CA_FILE           the operator CA (PEM) that signed the gateway's certificate
 *   PARTNER_CERT_FILE         this partner's client certificate (PEM); its SAN URI crm://retailers/{id}
 *                             names the partner, and so the shop the reward is handed over at
 *   PARTNER_KEY_FILE          the private key of that certificate (PEM)
 *   PROTO_INCLUDE_DIRS        where google/type, google/rpc and google/protobuf *.proto live, separated
 *                             like PATH (the CRM's own protos are read from the repository's protos/)
 *   CUSTOMER_PHONE_NUMBER     the phone number of a customer this partner onboarded
 *   HANDSET_REWARD            the reward to reserve, `rewards/{reward}` (a handset in stock at this shop)
 *   OTHER_PARTNERS_CUSTOMER   a customer another partner onboarded, `customers/{customer}`
 *   CALL_TIMEOUT_SECONDS      the deadline of each call (default 5)
 *
 * Prints one JSON line with what it saw. Exits 0 when every step behaved, 1 (with the step and what
 * went wrong on stderr) when one did not, 2 when it is not configured.
 */

const crypto = require("node:crypto");
const fs = require("node:fs");
const path = require("node:path");

const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
// proto-loader parses with protobufjs; its own copy decodes the google.rpc.Status of a refusal.
const protobuf = require(require.resolve("protobufjs", { paths: [require.resolve("@grpc/proto-loader")] }));

const CRM_PROTOS = path.resolve(__dirname, "..", "..", "protos");
const SERVICE_PROTOS = ["crm/customer/v1/customer_service.proto", "crm/loyalty/v1/loyalty_service.proto"];
const STATUS_PROTOS = ["google/rpc/status.proto", "google/rpc/error_details.proto"];
const PARTNER_URI_PREFIX = "URI:crm://retailers/";
const HOLD_SECONDS = 600; // long enough for the hand-over at the counter
const PERMISSION_DENIED = grpc.status.PERMISSION_DENIED;

class StepFailed extends Error {
  constructor(step, message) {
    super(`${step}: ${message}`);
    this.step = step;
  }
}

class NotConfigured extends Error {}

function setting(name) {
  const value = (process.env[name] || "").trim();
  if (!value) {
    throw new NotConfigured(`${name} is not set`);
  }
  return value;
}

function readSettings() {
  const address = setting("GATEWAY_PARTNER_ADDRESS");
  const certificate = fs.readFileSync(setting("PARTNER_CERT_FILE"));
  const callTimeoutSeconds = Number(process.env.CALL_TIMEOUT_SECONDS || "5");
  if (!(callTimeoutSeconds > 0)) {
    throw new NotConfigured("CALL_TIMEOUT_SECONDS must be a positive number of seconds");
  }
  return {
    address,
    authority: fs.readFileSync(setting("PARTNER_CA_FILE")),
    certificate,
    key: fs.readFileSync(setting("PARTNER_KEY_FILE")),
    partner: partnerNamedBy(certificate),
    includeDirs: [CRM_PROTOS, ...setting("PROTO_INCLUDE_DIRS").split(path.delimiter).filter(Boolean)],
    phoneNumber: setting("CUSTOMER_PHONE_NUMBER"),
    reward: setting("HANDSET_REWARD"),
    otherPartnersCustomer: setting("OTHER_PARTNERS_CUSTOMER"),
    callTimeoutMs: 1000 * callTimeoutSeconds,
  };
}

/** `retailers/{id}` as the certificate's SAN URI names it: the gateway knows this partner by it. */
function partnerNamedBy(certificatePem) {
  const names = (new crypto.X509Certificate(certificatePem).subjectAltName || "").split(",").map((n) => n.trim());
  const uri = names.find((name) => name.startsWith(PARTNER_URI_PREFIX));
  if (!uri) {
    throw new NotConfigured(`PARTNER_CERT_FILE names no partner as ${PARTNER_URI_PREFIX}{id}`);
  }
  return `retailers/${uri.slice(PARTNER_URI_PREFIX.length)}`;
}

function loadClients(settings) {
  const definition = protoLoader.loadSync(SERVICE_PROTOS, {
    includeDirs: settings.includeDirs,
    keepCase: true, // field names as the protos spell them: phone_number, request_id
    enums: String,
    longs: Number,
    defaults: true,
    oneofs: true,
  });
  const crm = grpc.loadPackageDefinition(definition).crm;
  const credentials = grpc.credentials.createSsl(settings.authority, settings.key, settings.certificate);
  // One connection for both services: the gateway remembers whom this counter found by phone.
  const channel = new grpc.Channel(settings.address, credentials, {});
  return {
    channel,
    customers: new crm.customer.v1.CustomerService(settings.address, credentials, { channelOverride: channel }),
    loyalty: new crm.loyalty.v1.LoyaltyService(settings.address, credentials, { channelOverride: channel }),
  };
}

/** google.rpc.Status and its details, to read a refusal's reason; null when their protos are not found. */
function loadStatusTypes(includeDirs) {
  const root = new protobuf.Root();
  root.resolvePath = (origin, target) => {
    if (path.isAbsolute(target)) {
      return target;
    }
    const found = includeDirs.map((dir) => path.join(dir, target)).find((file) => fs.existsSync(file));
    return found || target;
  };
  try {
    return root.loadSync(STATUS_PROTOS, { keepCase: true });
  } catch (error) {
    process.stderr.write(`partner_counter: refusals are reported without their reason: ${error.message}\n`);
    return null;
  }
}

/** One unary call with a deadline, as a promise. */
function call(client, method, request, timeoutMs) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: new Date(Date.now() + timeoutMs) }, (error, response) =>
      error ? reject(error) : resolve(response),
    );
  });
}

function requestId(step) {
  return `counter-${step}-${crypto.randomUUID()}`;
}

function describeFailure(error) {
  const name = Object.keys(grpc.status).find((key) => grpc.status[key] === error.code);
  return `${name || error.code}: ${error.details || error.message}`;
}

async function step(name, run) {
  try {
    return await run();
  } catch (error) {
    if (error instanceof StepFailed) {
      throw error;
    }
    throw new StepFailed(name, error.code === undefined ? error.message : describeFailure(error));
  }
}

/** The numbers the gateway shows this partner: same length, hidden digits as `*`, the rest as they are. */
function isMaskOf(shown, number) {
  return (
    shown !== number &&
    shown.length === number.length &&
    shown.includes("*") &&
    [...shown].every((character, at) => character === "*" || character === number[at])
  );
}

async function findByPhone(clients, settings, seen) {
  const answer = await step("SearchCustomers", () =>
    call(clients.customers, "SearchCustomers", { phone_number: settings.phoneNumber }, settings.callTimeoutMs),
  );
  if (answer.customers.length !== 1) {
    throw new StepFailed("SearchCustomers", `expected one customer, found ${answer.customers.length}`);
  }
  const customer = answer.customers[0];
  seen.customer = customer.name;
  seen.retailer_id = customer.retailer_id;
  const phones = customer.contact_media.filter((m) => m.medium === "phone_number").map((m) => m.phone_number);
  seen.phone_numbers_shown = phones;
  seen.masked_phone = phones.find((shown) => isMaskOf(shown, settings.phoneNumber)) || null;
  seen.birth_date_shown = Boolean(customer.individual && customer.individual.birth_date);
  if (phones.includes(settings.phoneNumber)) {
    throw new StepFailed("SearchCustomers", "the phone number came back unmasked");
  }
  if (seen.masked_phone === null) {
    throw new StepFailed("SearchCustomers", `no masked form of the number among ${JSON.stringify(phones)}`);
  }
  if (seen.birth_date_shown) {
    throw new StepFailed("SearchCustomers", "the birth date is shown to a partner");
  }
  return customer;
}

async function reserveAndHandOver(clients, settings, customer, seen) {
  const account = `accounts/${customer.name.slice("customers/".length)}`;
  const held = await step("ReserveReward", () =>
    call(
      clients.loyalty,
      "ReserveReward",
      {
        account,
        reward: settings.reward,
        partner: settings.partner,
        hold_duration: { seconds: HOLD_SECONDS },
        request_id: requestId("reserve"),
      },
      settings.callTimeoutMs,
    ),
  );
  seen.reservation = held.name;
  seen.reserved_points = held.points;
  seen.reservation_states = [held.state];
  if (held.state !== "RESERVATION_STATE_HELD") {
    throw new StepFailed("ReserveReward", `the reservation is ${held.state}, not held`);
  }
  const captured = await step("CaptureReservation", () =>
    call(
      clients.loyalty,
      "CaptureReservation",
      { name: held.name, request_id: requestId("capture") },
      settings.callTimeoutMs,
    ),
  );
  seen.reservation_states.push(captured.state);
  if (captured.state !== "RESERVATION_STATE_CAPTURED") {
    throw new StepFailed("CaptureReservation", `the reservation is ${captured.state}, not captured`);
  }
}

async function expectRefusal(clients, settings, statusTypes, seen) {
  let error;
  try {
    await call(clients.customers, "GetCustomer", { name: settings.otherPartnersCustomer }, settings.callTimeoutMs);
  } catch (refusal) {
    error = refusal;
  }
  if (error === undefined) {
    throw new StepFailed("GetCustomer", `${settings.otherPartnersCustomer} of another partner was returned`);
  }
  seen.denial = { code: error.code, details: error.details, ...errorInfoOf(error, statusTypes) };
  if (error.code !== PERMISSION_DENIED) {
    throw new StepFailed("GetCustomer", `expected PERMISSION_DENIED (7), got ${describeFailure(error)}`);
  }
}

/** The ErrorInfo of a refusal's google.rpc.Status (grpc-status-details-bin); empty when it has none. */
function errorInfoOf(error, statusTypes) {
  const encoded = error.metadata && error.metadata.get("grpc-status-details-bin")[0];
  if (!encoded || statusTypes === null) {
    return {};
  }
  const status = statusTypes.lookupType("google.rpc.Status").decode(encoded);
  const info = status.details.find((any) => any.type_url.endsWith("/google.rpc.ErrorInfo"));
  if (!info) {
    return {};
  }
  const decoded = statusTypes.lookupType("google.rpc.ErrorInfo").decode(info.value);
  return { reason: decoded.reason, domain: decoded.domain, metadata: decoded.metadata };
}

async function main() {
  let settings;
  try {
    settings = readSettings();
  } catch (error) {
    process.stderr.write(`partner_counter: not configured: ${error.message}\n`);
    return 2;
  }
  const seen = { partner: settings.partner };
  const clients = loadClients(settings);
  try {
    const customer = await findByPhone(clients, settings, seen);
    await reserveAndHandOver(clients, settings, customer, seen);
    await expectRefusal(clients, settings, loadStatusTypes(settings.includeDirs), seen);
    return 0;
  } catch (error) {
    seen.failed = error.message;
    process.stderr.write(`partner_counter: ${error instanceof StepFailed ? error.message : error.stack}\n`);
    return 1;
  } finally {
    process.stdout.write(`${JSON.stringify(seen)}\n`);
    clients.channel.close();
  }
}

main().then((code) => {
  process.exitCode = code;
});
