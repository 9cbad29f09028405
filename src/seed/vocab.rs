//! Fixed vocabularies of the generated data: plans, countries, name locales, hand-picked
//! names, e-mail domains, and the accent folding used to turn names into e-mail addresses.
//!
//! Everything here is a `const` slice in a fixed order, so picks by index are reproducible.
//! fixtures/README.md documents the weights; keep the two in step.

use fake::faker::name::raw::{FirstName, LastName};
use fake::locales::{
    Data, AR_SA, CY_GB, DE_DE, EN, FA_IR, FR_FR, IT_IT, JA_JP, NL_NL, PT_BR, PT_PT, TR_TR, ZH_CN,
    ZH_TW,
};
use fake::Fake;
use rand_chacha::ChaCha8Rng;

/// One row of the `plans` table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// `plans.id`.
    pub id: i16,
    /// `plans.code`, the stable machine name.
    pub code: &'static str,
    /// `plans.name`, shown to customers.
    pub name: &'static str,
    /// `plans.price_cents`, charged every month.
    pub price_cents: i32,
    /// `plans.vat_rate` in units of 1/10000 (2000 = 0.2000).
    pub vat_rate_units: u32,
    /// Relative weight when a subscription picks its plan (per mille).
    pub weight: u32,
}

/// The four plans, all billed monthly in EUR. None is free: `payments.amount_cents > 0`.
pub const PLANS: [Plan; 4] = [
    Plan {
        id: 1,
        code: "starter",
        name: "Starter",
        price_cents: 490,
        vat_rate_units: 2000,
        weight: 350,
    },
    Plan {
        id: 2,
        code: "basic",
        name: "Basic",
        price_cents: 990,
        vat_rate_units: 2000,
        weight: 350,
    },
    Plan {
        id: 3,
        code: "pro",
        name: "Pro",
        price_cents: 2900,
        vat_rate_units: 2000,
        weight: 220,
    },
    Plan {
        id: 4,
        code: "business",
        name: "Business",
        price_cents: 9900,
        vat_rate_units: 1900,
        weight: 80,
    },
];

/// The currency of every plan and payment.
pub const CURRENCY: &str = "EUR";

/// Which `fake` locale a country's names come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameLocale {
    /// English.
    En,
    /// German.
    De,
    /// French.
    Fr,
    /// Italian.
    It,
    /// Dutch.
    Nl,
    /// Brazilian Portuguese.
    PtBr,
    /// European Portuguese.
    PtPt,
    /// Japanese (kanji, family name first).
    Ja,
    /// Simplified Chinese (family name first, no space).
    ZhCn,
    /// Traditional Chinese (family name first, no space).
    ZhTw,
    /// Turkish.
    Tr,
    /// Arabic (right-to-left script).
    Ar,
    /// Persian (right-to-left script).
    Fa,
    /// Welsh.
    Cy,
}

/// A country users sign up from, with where its names come from and its profile defaults.
#[derive(Debug, Clone, Copy)]
pub struct Country {
    /// ISO 3166-1 alpha-2 code, `users.country`.
    pub code: &'static str,
    /// Share of users (per mille; the column sums to 1000).
    pub weight: u32,
    /// Source of first and last names.
    pub names: NameLocale,
    /// BCP 47 tag stored in `profile.locale`.
    pub locale: &'static str,
    /// IANA zone stored in `profile.timezone`.
    pub timezone: &'static str,
}

const fn country(
    code: &'static str,
    weight: u32,
    names: NameLocale,
    locale: &'static str,
    timezone: &'static str,
) -> Country {
    Country {
        code,
        weight,
        names,
        locale,
        timezone,
    }
}

/// Countries of generated (not hand-picked) users; weights sum to 1000.
pub const COUNTRIES: [Country; 21] = [
    country("DE", 160, NameLocale::De, "de-DE", "Europe/Berlin"),
    country("AT", 25, NameLocale::De, "de-AT", "Europe/Vienna"),
    country("CH", 20, NameLocale::De, "de-CH", "Europe/Zurich"),
    country("FR", 120, NameLocale::Fr, "fr-FR", "Europe/Paris"),
    country("BE", 20, NameLocale::Fr, "fr-BE", "Europe/Brussels"),
    country("NL", 60, NameLocale::Nl, "nl-NL", "Europe/Amsterdam"),
    country("IT", 60, NameLocale::It, "it-IT", "Europe/Rome"),
    country("GB", 80, NameLocale::En, "en-GB", "Europe/London"),
    country("GB", 10, NameLocale::Cy, "cy-GB", "Europe/London"),
    country("IE", 15, NameLocale::En, "en-IE", "Europe/Dublin"),
    country("US", 110, NameLocale::En, "en-US", "America/New_York"),
    country("CA", 20, NameLocale::En, "en-CA", "America/Toronto"),
    country("AU", 20, NameLocale::En, "en-AU", "Australia/Sydney"),
    country("PT", 30, NameLocale::PtPt, "pt-PT", "Europe/Lisbon"),
    country("BR", 50, NameLocale::PtBr, "pt-BR", "America/Sao_Paulo"),
    country("JP", 50, NameLocale::Ja, "ja-JP", "Asia/Tokyo"),
    country("CN", 35, NameLocale::ZhCn, "zh-CN", "Asia/Shanghai"),
    country("TW", 20, NameLocale::ZhTw, "zh-TW", "Asia/Taipei"),
    country("TR", 35, NameLocale::Tr, "tr-TR", "Europe/Istanbul"),
    country("AE", 40, NameLocale::Ar, "ar-AE", "Asia/Dubai"),
    country("AE", 20, NameLocale::Fa, "fa-AE", "Asia/Dubai"),
];

/// A name chosen by hand because it stresses encodings: decomposed accents, 4-byte UTF-8,
/// right-to-left and CJK scripts, apostrophes and quotes.
#[derive(Debug, Clone, Copy)]
pub struct HandPicked {
    /// `users.full_name`, exactly these bytes.
    pub full_name: &'static str,
    /// ISO country code.
    pub country: &'static str,
    /// `profile.locale`.
    pub locale: &'static str,
    /// `profile.timezone`.
    pub timezone: &'static str,
}

const fn hand(
    full_name: &'static str,
    country: &'static str,
    locale: &'static str,
    timezone: &'static str,
) -> HandPicked {
    HandPicked {
        full_name,
        country,
        locale,
        timezone,
    }
}

/// Hand-picked names, drawn uniformly for 1.5 % of users.
pub const HAND_PICKED: [HandPicked; 20] = [
    hand("Zoë Ångström", "SE", "sv-SE", "Europe/Stockholm"),
    hand("José Martínez-Ibáñez", "ES", "es-ES", "Europe/Madrid"),
    hand("Søren Kierkegård", "DK", "da-DK", "Europe/Copenhagen"),
    hand("Łukasz Żółkiewski", "PL", "pl-PL", "Europe/Warsaw"),
    hand("Nguyễn Thị Minh Khai", "VN", "vi-VN", "Asia/Ho_Chi_Minh"),
    hand("Ólafur Þórðarson", "IS", "is-IS", "Atlantic/Reykjavik"),
    hand("Siobhán O'Connor", "IE", "ga-IE", "Europe/Dublin"),
    // Decomposed (NFD): "e" + U+0301 COMBINING ACUTE, byte-different from the usual NFC "é".
    hand("Rene\u{301}e Lefe\u{300}vre", "FR", "fr-FR", "Europe/Paris"),
    hand("山田 太郎", "JP", "ja-JP", "Asia/Tokyo"),
    hand("김민준", "KR", "ko-KR", "Asia/Seoul"),
    hand("Αλέξανδρος Παπαδόπουλος", "GR", "el-GR", "Europe/Athens"),
    hand("Дмитрий Иванов", "UA", "uk-UA", "Europe/Kyiv"),
    hand("محمد الأحمد", "SA", "ar-SA", "Asia/Riyadh"),
    hand("Ana Lúcia 🌸 Silva", "BR", "pt-BR", "America/Sao_Paulo"),
    hand("Jürgen Groß", "DE", "de-DE", "Europe/Berlin"),
    hand("Işıl Çağla Şimşek", "TR", "tr-TR", "Europe/Istanbul"),
    hand(
        "François-Xavier de la Tour d'Auvergne",
        "FR",
        "fr-FR",
        "Europe/Paris",
    ),
    hand("Mary-Jane \"MJ\" Watson", "US", "en-US", "America/Chicago"),
    hand("Åse Ærø", "NO", "nb-NO", "Europe/Oslo"),
    hand("Đặng Văn Lâm", "VN", "vi-VN", "Asia/Ho_Chi_Minh"),
];

/// E-mail domains (all reserved for documentation by RFC 2606 / RFC 6761) with weights
/// summing to 1000.
pub const EMAIL_DOMAINS: [(&str, u32); 7] = [
    ("example.com", 300),
    ("example.net", 150),
    ("example.org", 150),
    ("mail.example", 150),
    ("post.example", 100),
    ("inbox.test", 100),
    ("company.example", 50),
];

/// Index into a weight table by a draw in `0..sum(weights)`.
pub fn pick_weighted(weights: impl IntoIterator<Item = u32>, draw: u32) -> usize {
    let mut acc = 0;
    let mut last = 0;
    for (i, w) in weights.into_iter().enumerate() {
        acc += w;
        if draw < acc {
            return i;
        }
        last = i;
    }
    last
}

/// A first and a last name, and whether the family name is written first.
#[derive(Debug, Clone, Copy)]
pub struct PersonName {
    /// Given name.
    pub first: &'static str,
    /// Family name.
    pub last: &'static str,
    /// Family name first (Japanese, Chinese).
    pub family_first: bool,
    /// Space between the parts (not in Chinese).
    pub spaced: bool,
}

fn person<L: Data + Copy>(locale: L, rng: &mut ChaCha8Rng) -> PersonName {
    let first: &'static str = FirstName(locale).fake_with_rng(rng);
    let last: &'static str = LastName(locale).fake_with_rng(rng);
    // Follow the locale's own template so names read the way the locale writes them.
    let tpl = L::NAME_TPL;
    PersonName {
        first,
        last,
        family_first: tpl.starts_with("{LastName}"),
        spaced: tpl.contains("} {"),
    }
}

/// Draws a person's name from `fake`'s data for `locale`.
pub fn fake_person(locale: NameLocale, rng: &mut ChaCha8Rng) -> PersonName {
    match locale {
        NameLocale::En => person(EN, rng),
        NameLocale::De => person(DE_DE, rng),
        NameLocale::Fr => person(FR_FR, rng),
        NameLocale::It => person(IT_IT, rng),
        NameLocale::Nl => person(NL_NL, rng),
        NameLocale::PtBr => person(PT_BR, rng),
        NameLocale::PtPt => person(PT_PT, rng),
        NameLocale::Ja => person(JA_JP, rng),
        NameLocale::ZhCn => person(ZH_CN, rng),
        NameLocale::ZhTw => person(ZH_TW, rng),
        NameLocale::Tr => person(TR_TR, rng),
        NameLocale::Ar => person(AR_SA, rng),
        NameLocale::Fa => person(FA_IR, rng),
        NameLocale::Cy => person(CY_GB, rng),
    }
}

/// ASCII spelling of one character for an e-mail local part: lowercase letters only.
///
/// Latin letters with diacritics lose them (the common practice for addresses); other
/// scripts and punctuation give nothing, so a slug is always `[a-z]*`.
fn fold_char(c: char) -> &'static str {
    const LOWER: [&str; 26] = [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m", "n", "o", "p", "q", "r",
        "s", "t", "u", "v", "w", "x", "y", "z",
    ];
    match c {
        'a'..='z' => LOWER[(c as u8 - b'a') as usize],
        'A'..='Z' => LOWER[(c as u8 - b'A') as usize],
        'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ą' | 'ă' | 'ạ' | 'ả' | 'ấ' | 'ầ' | 'ậ' | 'À'
        | 'Á' | 'Â' | 'Ã' | 'Ä' | 'Å' | 'Ā' | 'Ą' => "a",
        'æ' | 'Æ' => "ae",
        'ç' | 'ć' | 'č' | 'Ç' | 'Ć' | 'Č' => "c",
        'ď' | 'đ' | 'ð' | 'Ď' | 'Đ' | 'Ð' => "d",
        'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ę' | 'ě' | 'ė' | 'ẹ' | 'ễ' | 'ế' | 'ề' | 'ệ' | 'È' | 'É'
        | 'Ê' | 'Ë' | 'Ē' | 'Ę' | 'Ě' => "e",
        'ğ' | 'Ğ' => "g",
        'ì' | 'í' | 'î' | 'ï' | 'ī' | 'ı' | 'ị' | 'Ì' | 'Í' | 'Î' | 'Ï' | 'İ' => "i",
        'ł' | 'ľ' | 'Ł' | 'Ľ' => "l",
        'ñ' | 'ń' | 'ň' | 'Ñ' | 'Ń' | 'Ň' => "n",
        'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' | 'ơ' | 'ọ' | 'ồ' | 'ố' | 'Ò' | 'Ó' | 'Ô'
        | 'Õ' | 'Ö' | 'Ø' | 'Ő' => "o",
        'œ' | 'Œ' => "oe",
        'ř' | 'Ř' => "r",
        'ś' | 'š' | 'ş' | 'ș' | 'Ś' | 'Š' | 'Ş' | 'Ș' => "s",
        'ß' => "ss",
        'ť' | 'ţ' | 'ț' | 'Ť' | 'Ţ' | 'Ț' => "t",
        'þ' | 'Þ' => "th",
        'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' | 'ư' | 'ụ' | 'Ù' | 'Ú' | 'Û' | 'Ü' | 'Ū' | 'Ů'
        | 'Ű' => "u",
        'ý' | 'ÿ' | 'Ý' | 'Ÿ' => "y",
        'ź' | 'ż' | 'ž' | 'Ź' | 'Ż' | 'Ž' => "z",
        _ => "",
    }
}

/// Appends the e-mail slug of `s` to `out` (lowercase ASCII letters only) and returns how
/// many bytes it appended.
pub fn push_slug(out: &mut Vec<u8>, s: &str) -> usize {
    let start = out.len();
    for c in s.chars() {
        out.extend_from_slice(fold_char(c).as_bytes());
    }
    out.len() - start
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_sum_to_one_thousand() {
        assert_eq!(COUNTRIES.iter().map(|c| c.weight).sum::<u32>(), 1000);
        assert_eq!(EMAIL_DOMAINS.iter().map(|d| d.1).sum::<u32>(), 1000);
        assert_eq!(PLANS.iter().map(|p| p.weight).sum::<u32>(), 1000);
    }

    #[test]
    fn slugs_fold_accents_and_drop_other_scripts() {
        let slug = |s| {
            let mut v = Vec::new();
            push_slug(&mut v, s);
            String::from_utf8(v).unwrap()
        };
        assert_eq!(slug("Zoë Ångström"), "zoeangstrom");
        assert_eq!(slug("Ólafur Þórðarson"), "olafurthordarson");
        assert_eq!(slug("O'Connor-Groß"), "oconnorgross");
        assert_eq!(slug("Rene\u{301}e"), "renee");
        assert_eq!(slug("山田"), "");
    }

    #[test]
    fn pick_weighted_covers_every_bucket_boundary() {
        let w = [10, 0, 5];
        assert_eq!(pick_weighted(w, 0), 0);
        assert_eq!(pick_weighted(w, 9), 0);
        assert_eq!(pick_weighted(w, 10), 2);
        assert_eq!(pick_weighted(w, 14), 2);
    }
}
