import { LosslessNumber } from 'lossless-json';
import { deepFreeze } from './json.js';
import { SeededRandom, toBase62 } from './random.js';

/*
 * Deterministic site data. Each user is generated from its own PRNG seeded by
 * (seed, company, index), so a user's data does not depend on how many users exist.
 * Values that many users share ({value, displayValue} objects, groups, company) are frozen
 * shared objects: 1M users must fit in memory. Mutations replace them, never edit them.
 */

export const HOST_COMPANY = '_host';

/** Generated dates are spread over the ~2 years before this instant (fixed for determinism). */
export const DATA_ANCHOR_MS = Date.UTC(2025, 9, 15, 0, 0, 0);

export interface Group {
  variableName: string;
  label: string;
  type: string;
}

export interface AccessPermission {
  type: string;
  variableName: string;
  name: string;
  hasAccess: boolean;
}

export interface CompanyInfo {
  /** The company in user paths (`_host` for the host). */
  loginName: string;
  /** As the company list names it: the host by its own login name (hostLoginName), as integration users name it. */
  listedLoginName: string;
  name: string;
  id: number;
  isHost: boolean;
}

/**
 * A user as CPQ v19 JSON with canonical field names, groups and accessPermissions expanded as
 * `{items: [...]}`, partyId a LosslessNumber, and no links (those depend on the request).
 */
export type UserRecord = Record<string, unknown>;

export interface DataSettings {
  seed: number;
  partnerCompanies: number;
  usersPerCompany: number;
  integrationUsers: number;
  groups: number;
  /** Fusion sites use partyNumbers like "BM_Zb69fNkzcp8"; classic ones the partyId digits. */
  fusionPartyNumbers: boolean;
  hostLoginName: string;
  /** Adds an unknown field (customAttr1) to a few users. */
  unknownFields: boolean;
}

const GROUP_TYPES = ['Administrator', 'Sales', 'Approver', 'Manager', 'Partner', 'Support'];
const GROUP_TOPICS = ['Americas', 'Emea', 'Apac', 'Tier1', 'Tier2', 'Pricing', 'Quotes', 'Renewals', 'Channel', 'Direct'];

const PERMISSION_ENTITIES: ReadonlyArray<Omit<AccessPermission, 'hasAccess'>> = [
  { type: 'productFamily', variableName: 'laptops', name: 'Laptops' },
  { type: 'productFamily', variableName: 'servers', name: 'Servers' },
  { type: 'productFamily', variableName: 'storage', name: 'Storage' },
  { type: 'productFamily', variableName: 'networking', name: 'Networking' },
  { type: 'supportedProductFamily', variableName: 'cloudServices', name: 'Cloud Services' },
  { type: 'supportedProductFamily', variableName: 'supportPlans', name: 'Support Plans' },
  { type: 'supportedProductFamily', variableName: 'softwareLicenses', name: 'Software Licenses' },
  { type: 'dataTableFolder', variableName: 'pricingTables', name: 'Pricing Tables' },
  { type: 'dataTableFolder', variableName: 'discountMatrix', name: 'Discount Matrix' },
  { type: 'dataTableFolder', variableName: 'regionalRates', name: 'Regional Rates' },
];

const FIRST_NAMES = [
  'John',
  'Simon',
  'Mary',
  'Aisha',
  'Wei',
  'Carlos',
  'Priya',
  'Olga',
  'Liam',
  'Emma',
  'Noah',
  'Sofia',
  'Kenji',
  'Fatima',
  'Lucas',
  'Chloe',
  'José',
  'Zoë',
  'Renée',
  'Ángel',
];
const LAST_NAMES = [
  'Jones',
  'Watts',
  'Smith',
  'Nguyen',
  'Garcia',
  'Müller',
  'Okafor',
  'Kowalski',
  'Tanaka',
  'Brown',
  "O'Brien",
  'Dubois',
  'Rossi',
  'Silva',
  'Kim',
  'Patel',
  'Ivanova',
  'Larsen',
  'Cohen',
  'Martin',
];
const JOB_TITLES = [
  'Sales Representative',
  'Sales Manager Administrator',
  'Pricing Analyst',
  'Account Executive',
  'Deal Desk',
  'Partner Manager',
  'Quote Approver',
  '',
];
const STREETS = ['Main Street', 'Oak Avenue', 'Market Street', 'Lake Shore Drive', 'High Street', 'Rue de Rivoli'];
const LOCATIONS: ReadonlyArray<{ city: string; state: string; country: string; zip: string }> = [
  { city: 'Chicago', state: 'Illinois', country: 'United States', zip: '60601' },
  { city: 'Austin', state: 'Texas', country: 'United States', zip: '73301' },
  { city: 'San Francisco', state: 'California', country: 'United States', zip: '94105' },
  { city: 'Toronto', state: 'Ontario', country: 'Canada', zip: 'M5H 2N2' },
  { city: 'München', state: 'Bayern', country: 'Germany', zip: '80331' },
  { city: 'London', state: '', country: 'United Kingdom', zip: 'EC1A 1BB' },
  { city: 'Osaka', state: 'Osaka', country: 'Japan', zip: '530-0001' },
];

function valueDisplay<T extends string | number>(value: T, displayValue: string): { value: T; displayValue: string } {
  return deepFreeze({ value, displayValue });
}

const USER_TYPES = [
  valueDisplay('FULL_ACCESS', 'FullAccess'),
  valueDisplay('SALES_AGENT', 'Sales Agent'),
  valueDisplay('RESTRICTED_ACCESS', 'Restricted Access'),
];
const LANGUAGES = [
  valueDisplay('en_US', 'English'),
  valueDisplay('fr_FR', 'French'),
  valueDisplay('de_DE', 'German'),
  valueDisplay('ja_JP', 'Japanese'),
  valueDisplay('es_ES', 'Spanish'),
];
const CURRENCIES = [valueDisplay('USD', 'US Dollar'), valueDisplay('EUR', 'Euro'), valueDisplay('GBP', 'British Pound'), valueDisplay('JPY', 'Japanese Yen')];
const NUMBER_FORMATS = [valueDisplay(0, '####.##'), valueDisplay(1, '####,##')];
const TIME_ZONES = [
  valueDisplay('America/Chicago', '(GMT-6:00 GMT-5:00) Chicago'),
  valueDisplay('America/Los_Angeles', '(GMT-8:00 GMT-7:00) Los Angeles'),
  valueDisplay('America/New_York', '(GMT-5:00 GMT-4:00) New York'),
  valueDisplay('Europe/London', '(GMT+0:00 GMT+1:00) London'),
  valueDisplay('Asia/Tokyo', '(GMT+9:00) Tokyo'),
];
const UNITS = [valueDisplay(0, 'System Default'), valueDisplay(1, 'English'), valueDisplay(2, 'Metric')];
const DATE_FORMATS = [valueDisplay(0, 'MM/dd/yyyy h:mm a'), valueDisplay(16, 'dd/MM/yyyy h:mm a'), valueDisplay(2, 'yyyy-MM-dd HH:mm')];
const STATUS_ACTIVE = valueDisplay(1, 'Active');
const STATUS_INACTIVE = valueDisplay(0, 'Inactive');
const SSO_NOT_ENABLED = valueDisplay('NOT_ENABLED', 'Not Enabled');
const SSO_ENABLED = valueDisplay('SSO_ENABLED', 'Enabled for SSO');

const SECOND = 1000;
const DAY = 86_400 * SECOND;

function isoSeconds(ms: number): string {
  return new Date(Math.floor(ms / SECOND) * SECOND).toISOString();
}

function asciiLower(name: string): string {
  return name
    .normalize('NFD')
    .replace(/[^A-Za-z]/g, '')
    .toLowerCase();
}

function lowerFirst(text: string): string {
  return text.charAt(0).toLowerCase() + text.slice(1);
}

/**
 * Unique per company by construction: every style ends in the zero-padded index and no
 * prefix ends in a digit. Styles mix case and punctuation so that only a code-unit sort
 * gives a stable order.
 */
function makeLogin(rng: SeededRandom, first: string, last: string, index: number, width: number): string {
  const suffix = String(index).padStart(width, '0');
  const style = rng.next();
  if (style < 0.75) return `user${suffix}`;
  if (style < 0.85) return `User${suffix}`;
  if (style < 0.9) return `${asciiLower(first)}.${asciiLower(last)}${suffix}`;
  if (style < 0.94) return `${first.normalize('NFD').replace(/[^A-Za-z]/g, '')}-${last.normalize('NFD').replace(/[^A-Za-z]/g, '')}${suffix}`;
  if (style < 0.97) return `${asciiLower(first)}_${suffix}`;
  return `ADMIN${suffix}`;
}

/**
 * A bijection on [0, modulus): multiplier coprime to the modulus. Makes index-derived
 * identifiers unique by construction without looking sequential.
 */
function scramble(index: number, modulus: bigint, multiplier: bigint, offset: bigint): bigint {
  return (BigInt(index) * multiplier + offset) % modulus;
}

const TEN_POW_12 = 10n ** 12n;
const BASE62_POW_6 = 62n ** 6n;

/**
 * partyId is unique by construction (the scrambled global index fills the low 12 digits);
 * about 90% are 18 digits, far above 2^53, the rest 15 digits (exact in a double).
 */
function makePartyId(rng: SeededRandom, globalIndex: number): string {
  const low = scramble(globalIndex, TEN_POW_12, 792_606_555_397n, 181_556_695_830n).toString().padStart(12, '0');
  return rng.chance(0.9) ? `${rng.int(1, 9)}${rng.digits(5)}${low}` : `3${rng.digits(2)}${low}`;
}

function makePartyNumber(rng: SeededRandom, partyId: string, globalIndex: number, fusion: boolean): string {
  if (!fusion) return partyId;
  const unique = Number(scramble(globalIndex, BASE62_POW_6, 9_035_719_303n, 31_876_688_442n));
  return `BM_${rng.alphanumeric(5)}${toBase62(unique, 6)}`;
}

export interface GeneratedUser {
  company: string;
  record: UserRecord;
  isIntegration: boolean;
}

export interface GeneratedSite {
  companies: CompanyInfo[];
  users: GeneratedUser[];
  groupPool: readonly Group[];
}

export class SiteDataFactory {
  private pool: readonly Group[];
  /** The site's group definitions, which new users and integration-user writes take. */
  get groupPool(): readonly Group[] {
    return this.pool;
  }
  readonly companies: readonly CompanyInfo[];
  private readonly permissionPool: ReadonlyArray<readonly [AccessPermission, AccessPermission]>;
  private readonly companyRefs = new Map<string, { name: string; loginName: string }>();
  private readonly loginWidth: number;

  /** The site redefines a group (a test's relabel): its label and type from now on. */
  redefineGroup(variableName: string, label: string, type: string): void {
    this.pool = this.pool.map((g) => (g.variableName === variableName ? { variableName, label, type } : g));
  }

  constructor(private readonly settings: DataSettings) {
    this.pool = this.makeGroupPool();
    this.permissionPool = PERMISSION_ENTITIES.map(
      (entity) => [deepFreeze({ ...entity, hasAccess: true }), deepFreeze({ ...entity, hasAccess: false })] as const,
    );
    this.companies = this.makeCompanies();
    this.loginWidth = Math.max(5, String(settings.usersPerCompany).length);
  }

  generateSite(): GeneratedSite {
    const users: GeneratedUser[] = [];
    let globalIndex = 0;
    for (const company of this.companies) {
      for (let i = 0; i < this.settings.usersPerCompany; i++) {
        users.push({ company: company.loginName, record: this.companyUser(company.loginName, i, globalIndex++), isIntegration: false });
      }
    }
    for (let i = 0; i < this.settings.integrationUsers; i++) {
      users.push({ company: HOST_COMPANY, record: this.integrationUser(i, globalIndex++), isIntegration: true });
    }
    return { companies: [...this.companies], users, groupPool: this.groupPool };
  }

  /** First global index free for users added later (partyId / partyNumber stay unique). */
  get generatedUserCount(): number {
    return this.companies.length * this.settings.usersPerCompany + this.settings.integrationUsers;
  }

  companyUser(company: string, index: number, globalIndex: number): UserRecord {
    const { seed } = this.settings;
    const rng = SeededRandom.forParts(seed, 'user', company, index);
    const first = rng.pick(FIRST_NAMES);
    const last = rng.pick(LAST_NAMES);
    const login = makeLogin(rng, first, last, index, this.loginWidth);
    const companyRef = this.companyRef(company);
    const domain = `${company.replace(/[^A-Za-z0-9]/g, '') || 'host'}.example.com`;
    const email = `${login.toLowerCase()}@${domain}`;
    const billing = rng.pick(LOCATIONS);
    const separateShipAddr = rng.chance(0.2);
    const shipping = separateShipAddr ? rng.pick(LOCATIONS) : billing;
    const billStreet = `${rng.int(1, 9999)} ${rng.pick(STREETS)}`;
    const shipStreet = separateShipAddr ? `${rng.int(1, 9999)} ${rng.pick(STREETS)}` : billStreet;
    const phone = rng.digits(10);
    const fax = rng.chance(0.3) ? rng.digits(10) : '';
    const partyId = makePartyId(rng, globalIndex);
    const dates = this.makeDates(rng);
    const ssoEnabled = rng.chance(0.3);

    // Each draw from `rng` moves every later one: the groups, permissions and statuses of every
    // seeded user, which tests count (test/zip-export.test.ts: 175 permissions for 80 users). A new
    // field draws from a sequence of its own, SeededRandom.forParts(seed, '<field>', company, index).
    const fullRecord: UserRecord = {
      login,
      isNotifyFax: rng.chance(0.1),
      firstName: first,
      lastName: last,
      jobTitle: rng.pick(JOB_TITLES),
      email,
      phone,
      fax,
      billFirstName: first,
      billLastName: last,
      billCompany: companyRef.name,
      billCompany2: '',
      billAddress1: billStreet,
      billAddress2: rng.chance(0.2) ? `Suite ${rng.int(100, 999)}` : '',
      billCity: billing.city,
      billStateProvince: billing.state,
      billZip: billing.zip,
      billCountry: billing.country,
      billPhone: phone,
      billFax: fax,
      billEmail: email,
      shipFirstName: first,
      shipLastName: last,
      shipCompany: companyRef.name,
      shipCompany2: '',
      shipAddress1: shipStreet,
      shipAddress2: '',
      shipCity: shipping.city,
      shipStateProvince: shipping.state,
      shipZip: shipping.zip,
      shipCountry: shipping.country,
      shipPhone: phone,
      shipFax: fax,
      shipEmail: email,
      separateShipAddr,
      isNotifyEmail: rng.chance(0.8),
      isUserAdminPermEnabled: rng.chance(0.1),
      isApplicationAdminPermEnabled: rng.chance(0.05),
      isWebServicesOnly: false,
      isAccessAdminPermEnabled: rng.chance(0.1),
      isProxyPermEnabled: rng.chance(0.3),
      isMobileEnabled: rng.chance(0.4),
      approvalDelegate: rng.chance(0.15) ? `user${String(rng.int(0, Math.max(0, this.settings.usersPerCompany - 1))).padStart(this.loginWidth, '0')}` : '',
      partnerLogin: company === HOST_COMPANY ? '' : login,
      externalSsoId: ssoEnabled ? email : '',
      sfdcOrgId: '',
      partyId: new LosslessNumber(partyId),
      partyNumber: makePartyNumber(rng, partyId, globalIndex, this.settings.fusionPartyNumbers),
      dateModified: dates.dateModified,
      dateAdded: dates.dateAdded,
      lastLogin: dates.lastLogin,
      type: rng.chance(0.8) ? USER_TYPES[0] : rng.pick(USER_TYPES),
      language: rng.chance(0.7) ? LANGUAGES[0] : rng.pick(LANGUAGES),
      currency: rng.chance(0.7) ? CURRENCIES[0] : rng.pick(CURRENCIES),
      numberFormat: rng.pick(NUMBER_FORMATS),
      timeZone: rng.pick(TIME_ZONES),
      units: rng.pick(UNITS),
      dateFormat: rng.pick(DATE_FORMATS),
      status: rng.chance(0.85) ? STATUS_ACTIVE : STATUS_INACTIVE,
      enabledForSso: ssoEnabled ? SSO_ENABLED : SSO_NOT_ENABLED,
      company: companyRef,
    };
    // Never logged in: CPQ sends null or leaves the field out; both occur. (Rest-spread, not
    // delete: delete would switch the object to V8's much larger dictionary mode.)
    let record = fullRecord;
    if (dates.lastLogin === undefined) {
      const { lastLogin: _absent, ...withoutLastLogin } = fullRecord;
      record = withoutLastLogin;
    }
    if (this.settings.unknownFields && rng.chance(0.03)) record.customAttr1 = `custom-${rng.alphanumeric(6)}`;
    record.groups = { items: this.pickGroups(rng) };
    record.accessPermissions = { items: this.pickPermissions(rng) };
    return record;
  }

  /** Shaped like Oracle's integration-user samples: sparse, no names or addresses. */
  integrationUser(index: number, globalIndex: number): UserRecord {
    const rng = SeededRandom.forParts(this.settings.seed, 'integration', index);
    const oauthClientId = rng.hex(32);
    const partyId = makePartyId(rng, globalIndex);
    const partyIdText = partyId.length === 18 ? partyId : `1${rng.digits(2)}${partyId}`; // always > 2^53
    const dates = this.makeDates(rng);
    const record: UserRecord = {
      login: `_custom_${oauthClientId}`,
      isNotifyFax: false,
      isNotifyEmail: true,
      isUserAdminPermEnabled: false,
      isApplicationAdminPermEnabled: false,
      isWebServicesOnly: true,
      isAccessAdminPermEnabled: false,
      isProxyPermEnabled: false,
      partyId: new LosslessNumber(partyIdText),
      partyNumber: makePartyNumber(rng, partyIdText, globalIndex, this.settings.fusionPartyNumbers),
    };
    // Half carry an int32-overflowing id, as in Oracle's create/update sample (3024590297).
    if (index % 2 === 0) record.id = 3_024_590_297 + index * 7_919;
    record.dateModified = dates.dateModified;
    record.dateAdded = dates.dateAdded;
    if (dates.lastLogin !== undefined) record.lastLogin = dates.lastLogin;
    Object.assign(record, {
      type: USER_TYPES[0],
      language: LANGUAGES[0],
      currency: CURRENCIES[0],
      numberFormat: NUMBER_FORMATS[0],
      timeZone: TIME_ZONES[0],
      units: UNITS[1],
      dateFormat: DATE_FORMATS[0],
      status: rng.chance(0.9) ? STATUS_ACTIVE : STATUS_INACTIVE,
      oauthClientId,
      company: this.companyRef(HOST_COMPANY),
      groups: { items: this.pickGroups(rng) },
      accessPermissions: { items: [] },
    });
    return record;
  }

  companyRef(company: string): { name: string; loginName: string } {
    const ref = this.companyRefs.get(company);
    if (!ref) throw new Error(`unknown company: ${company}`);
    return ref;
  }

  private makeDates(rng: SeededRandom): { dateModified: string; dateAdded: string; lastLogin: string | null | undefined } {
    const modified = DATA_ANCHOR_MS - rng.int(0, 730) * DAY - rng.int(0, 86_399) * SECOND;
    const added = modified - rng.int(0, 1_095) * DAY - rng.int(0, 86_399) * SECOND;
    let lastLogin: string | null | undefined;
    if (rng.chance(0.08)) lastLogin = rng.chance(0.5) ? null : undefined;
    else lastLogin = isoSeconds(added + Math.floor(rng.next() * (DATA_ANCHOR_MS - added)));
    return { dateModified: isoSeconds(modified), dateAdded: isoSeconds(added), lastLogin };
  }

  /** 1..5 groups, about 3 on average. */
  private pickGroups(rng: SeededRandom): Group[] {
    return rng.sample(this.groupPool, rng.int(1, 5));
  }

  /** 0..4 permissions, about 2 on average. */
  private pickPermissions(rng: SeededRandom): AccessPermission[] {
    return rng.sample(this.permissionPool, rng.int(0, 4)).map(([granted, denied]) => (rng.chance(0.75) ? granted : denied));
  }

  private makeGroupPool(): Group[] {
    const rng = SeededRandom.forParts(this.settings.seed, 'groups');
    // The first two come from Oracle's integration-user sample.
    const pool: Group[] = [
      { variableName: 'adminAccessGroupsOnly', label: 'Admin Access- Groups', type: 'Administrator' },
      { variableName: 'excludeMDBParts', label: 'No Longer Used 07', type: 'Sales' },
    ];
    for (let i = pool.length; i < this.settings.groups; i++) {
      const type = GROUP_TYPES[i % GROUP_TYPES.length] as string;
      const topic = rng.pick(GROUP_TOPICS);
      pool.push({ variableName: `${lowerFirst(type)}${topic}${i}`, label: `${type} ${topic} ${i}`, type });
    }
    return deepFreeze(pool.slice(0, Math.max(1, this.settings.groups)));
  }

  private makeCompanies(): CompanyInfo[] {
    const { hostLoginName, partnerCompanies } = this.settings;
    const hostName = hostLoginName === HOST_COMPANY ? 'cpq-sim' : hostLoginName;
    const companies: CompanyInfo[] = [{ loginName: HOST_COMPANY, listedLoginName: hostLoginName, name: hostName, id: 4_000_001, isHost: true }];
    this.companyRefs.set(HOST_COMPANY, deepFreeze({ name: hostName, loginName: hostLoginName }));
    for (let i = 1; i <= partnerCompanies; i++) {
      const loginName = `partner${i}`;
      const name = `Partner Company ${i}`;
      companies.push({ loginName, listedLoginName: loginName, name, id: 4_000_001 + i * 17, isHost: false });
      this.companyRefs.set(loginName, deepFreeze({ name, loginName }));
    }
    return companies;
  }
}
