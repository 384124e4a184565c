package ciphersuite

import "strings"

// weakness is a reason Go lists a suite as insecure.
type weakness uint8

const (
	weakRSAKeyExchange weakness = 1 << iota
	weakRC4
	weak3DES
	weakCBCSHA256
)

func weaknessesOf(s *suite) weakness {
	var w weakness
	if s.kx == kRSA {
		w |= weakRSAKeyExchange
	}
	if s.enc == encRC4 {
		w |= weakRC4
	}
	if s.enc == enc3DES {
		w |= weak3DES
	}
	if s.mac == macSHA256 && s.enc&encCBC != 0 {
		w |= weakCBCSHA256
	}
	return w
}

// term is one name in an element: a keyword, a suite or a TLS 1.3 suite.
type term struct {
	name  string
	match func(s *suite) bool // for keywords
	suite int                 // for a suite name: its table index + 1
	tls13 bool
	weak  weakness // the weakness a keyword names, if any
}

func (t term) matches(i int) bool {
	if t.suite != 0 {
		return t.suite == i+1
	}
	return t.match(&table[i])
}

func kx(m keyExchange) func(*suite) bool     { return func(s *suite) bool { return s.kx&m != 0 } }
func au(m authentication) func(*suite) bool  { return func(s *suite) bool { return s.au&m != 0 } }
func enc(m encryption) func(*suite) bool     { return func(s *suite) bool { return s.enc&m != 0 } }
func macIs(m mac) func(*suite) bool          { return func(s *suite) bool { return s.mac&m != 0 } }
func minVersion(v version) func(*suite) bool { return func(s *suite) bool { return s.ver == v } }
func hasFlag(f flags) func(*suite) bool      { return func(s *suite) bool { return s.flags&f != 0 } }
func levelIs(l level) func(*suite) bool      { return func(s *suite) bool { return s.level == l } }
func nothing(*suite) bool                    { return false }
func both(a, b func(*suite) bool) func(*suite) bool {
	return func(s *suite) bool { return a(s) && b(s) }
}

var authenticated = au(^aNULL)

// keywords are OpenSSL 3's cipher-string aliases (ssl/ssl_ciph.c), with the
// same meaning.
var keywords = map[string]term{
	"ALL":                 {match: func(s *suite) bool { return s.enc != encNULL }},
	"COMPLEMENTOFALL":     {match: enc(encNULL)},
	"COMPLEMENTOFDEFAULT": {match: hasFlag(flagNotDefault)},
	"HIGH":                {match: levelIs(levelHigh)},
	"MEDIUM":              {match: levelIs(levelMedium)},
	"FIPS":                {match: hasFlag(flagFIPS)},

	// Key exchange, and key exchange with authentication.
	"kRSA":      {match: kx(kRSA), weak: weakRSAKeyExchange},
	"RSA":       {match: both(kx(kRSA), au(aRSA)), weak: weakRSAKeyExchange},
	"kDHE":      {match: kx(kDHE)},
	"kEDH":      {match: kx(kDHE)},
	"DH":        {match: kx(kDHE)},
	"DHE":       {match: both(kx(kDHE), authenticated)},
	"EDH":       {match: both(kx(kDHE), authenticated)},
	"ADH":       {match: both(kx(kDHE), au(aNULL))},
	"kECDHE":    {match: kx(kECDHE)},
	"kEECDH":    {match: kx(kECDHE)},
	"ECDH":      {match: kx(kECDHE)},
	"ECDHE":     {match: both(kx(kECDHE), authenticated)},
	"EECDH":     {match: both(kx(kECDHE), authenticated)},
	"AECDH":     {match: both(kx(kECDHE), au(aNULL))},
	"kPSK":      {match: kx(kPSK)},
	"kRSAPSK":   {match: kx(kRSAPSK)},
	"kDHEPSK":   {match: kx(kDHEPSK)},
	"kECDHEPSK": {match: kx(kECDHEPSK)},
	"PSK":       {match: kx(kPSK | kRSAPSK | kDHEPSK | kECDHEPSK)},
	"kSRP":      {match: kx(kSRP)},
	"SRP":       {match: kx(kSRP)},

	// Authentication.
	"aRSA":   {match: au(aRSA)},
	"aDSS":   {match: au(aDSS)},
	"DSS":    {match: au(aDSS)},
	"aECDSA": {match: au(aECDSA)},
	"ECDSA":  {match: au(aECDSA)},
	"aNULL":  {match: au(aNULL)},
	"aPSK":   {match: au(aPSK)},
	"aSRP":   {match: au(aSRP)},

	// Encryption.
	"eNULL":       {match: enc(encNULL)},
	"NULL":        {match: enc(encNULL)},
	"AES":         {match: enc(encAES)},
	"AES128":      {match: enc(encAES128 | encAES128GCM | encAES128CCM | encAES128CCM8)},
	"AES256":      {match: enc(encAES256 | encAES256GCM | encAES256CCM | encAES256CCM8)},
	"AESGCM":      {match: enc(encAESGCM)},
	"AESCCM":      {match: enc(encAESCCM)},
	"AESCCM8":     {match: enc(encAESCCM8)},
	"CHACHA20":    {match: enc(encChaCha20)},
	"CAMELLIA":    {match: enc(encCamellia)},
	"CAMELLIA128": {match: enc(encCamellia128)},
	"CAMELLIA256": {match: enc(encCamellia256)},
	"ARIA":        {match: enc(encARIA)},
	"ARIA128":     {match: enc(encARIA128GCM)},
	"ARIA256":     {match: enc(encARIA256GCM)},
	"ARIAGCM":     {match: enc(encARIA)},
	"SEED":        {match: enc(encSEED)},
	"IDEA":        {match: enc(encIDEA)},
	"RC4":         {match: enc(encRC4), weak: weakRC4},
	"3DES":        {match: enc(enc3DES), weak: weak3DES},
	"CBC":         {match: enc(encCBC)},

	// MAC.
	"MD5":    {match: macIs(macMD5)},
	"SHA1":   {match: macIs(macSHA1)},
	"SHA":    {match: macIs(macSHA1)},
	"SHA256": {match: macIs(macSHA256), weak: weakCBCSHA256},
	"SHA384": {match: macIs(macSHA384)},

	// Oldest protocol version.
	"SSLv3":   {match: minVersion(verSSL3)},
	"TLSv1":   {match: minVersion(verTLS1)},
	"TLSv1.0": {match: minVersion(verTLS1)},
	"TLSv1.2": {match: minVersion(verTLS12)},
}

// emptyKeywords select nothing in OpenSSL 3 (their suites were removed, or
// they never existed outside old releases) but appear in cipher strings
// that are still in use, mostly as exclusions: "!EXPORT:!LOW:!kECDH".
var emptyKeywords = []string{
	"LOW", "EXP", "EXPORT", "EXPORT40", "EXPORT56", "DES", "RC2",
	"kDH", "kDHr", "kDHd", "kECDH", "kECDHr", "kECDHe", "aDH", "aECDH",
	"KRB5", "kKRB5", "aKRB5", "SSLv2", "kFZA", "aFZA", "eFZA", "FZA",
	"kGOST", "kGOST18", "aGOST", "aGOST01", "aGOST12", "GOST", "GOST89",
	"GOST89MAC", "GOST94", "GOST12",
}

// aliases are older OpenSSL names of suites in the table.
var aliases = map[string]string{
	"EDH-RSA-DES-CBC3-SHA": "DHE-RSA-DES-CBC3-SHA",
	"EDH-DSS-DES-CBC3-SHA": "DHE-DSS-DES-CBC3-SHA",
}

// tls13Names are the TLS 1.3 suites, which Go does not let one configure.
var tls13Names = []string{
	"TLS_AES_128_GCM_SHA256", "TLS_AES_256_GCM_SHA384", "TLS_CHACHA20_POLY1305_SHA256",
	"TLS_AES_128_CCM_SHA256", "TLS_AES_128_CCM_8_SHA256",
}

// names maps every name the parser knows to its term; folded maps the
// upper-case form of each to the name, for suggestions.
var (
	names  = map[string]term{}
	folded = map[string]string{}
)

func init() {
	add := func(name string, t term) {
		t.name = name
		names[name] = t
		if _, dup := folded[strings.ToUpper(name)]; !dup {
			folded[strings.ToUpper(name)] = name
		}
	}
	for name, t := range keywords {
		add(name, t)
	}
	for _, name := range emptyKeywords {
		add(name, term{match: nothing})
	}
	for i, s := range table {
		add(s.name, term{suite: i + 1})
		add(s.std, term{suite: i + 1})
	}
	for alias, name := range aliases {
		add(alias, term{suite: names[name].suite})
	}
	for _, name := range tls13Names {
		add(name, term{tls13: true})
	}
}

func lookup(name string) (term, bool) {
	t, ok := names[name]
	return t, ok
}

// suggest returns the known name that differs from name only by case.
func suggest(name string) string {
	return folded[strings.ToUpper(name)]
}
