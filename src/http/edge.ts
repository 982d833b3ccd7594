// What the HTTP API and the WebSocket gateway of one process share at their edge: the origin
// policy, client addresses (behind trusted proxies), failed authentications per address, and
// the throttled log of refused requests.
import { AuthFailures } from '../auth/failures.js';
import type { Config } from '../config.js';
import type { Logger } from '../log.js';
import { AbuseLog } from '../util/abuse-log.js';
import { ClientAddresses } from './client-ip.js';
import { OriginPolicy } from './origins.js';

export interface Edge {
  origins: OriginPolicy;
  addresses: ClientAddresses;
  failures: AuthFailures;
  abuse: AbuseLog;
}

export function createEdge(config: Config, log: Logger): Edge {
  const a = config.abuse;
  return {
    origins: new OriginPolicy(a.allowedOrigins),
    addresses: new ClientAddresses(a.trustedProxies),
    failures: new AuthFailures(a.authFailRate, a.authFailBurst),
    abuse: new AbuseLog(log),
  };
}
