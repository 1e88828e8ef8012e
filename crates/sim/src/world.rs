//! The population: merchants by city and category, and users with their habits, limits and
//! ground-truth class. Generated from the seed alone, so every configuration of a run sees
//! the same people.

use crate::clock::DAY_MS;
use crate::mix::Mix;
use serde::Serialize;

/// What a merchant sells; sets its MCC, its amounts and when people go there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Category {
    Breakfast,
    Restaurant,
    Coffee,
    Supermarket,
    Convenience,
    Metro,
    Fuel,
    Apparel,
    Electronics,
    Pharmacy,
    Cinema,
    MarketStall,
    Bookstore,
    Jewelry,
}

impl Category {
    pub const ALL: [Category; 14] = [
        Category::Breakfast,
        Category::Restaurant,
        Category::Coffee,
        Category::Supermarket,
        Category::Convenience,
        Category::Metro,
        Category::Fuel,
        Category::Apparel,
        Category::Electronics,
        Category::Pharmacy,
        Category::Cinema,
        Category::MarketStall,
        Category::Bookstore,
        Category::Jewelry,
    ];
    pub const COUNT: usize = Category::ALL.len();

    pub fn mcc(self) -> &'static str {
        match self {
            Category::Breakfast => "5814",
            Category::Restaurant => "5812",
            Category::Coffee => "5814",
            Category::Supermarket => "5411",
            Category::Convenience => "5499",
            Category::Metro => "4111",
            Category::Fuel => "5541",
            Category::Apparel => "5691",
            Category::Electronics => "5732",
            Category::Pharmacy => "5912",
            Category::Cinema => "7832",
            Category::MarketStall => "5422",
            Category::Bookstore => "5942",
            Category::Jewelry => "5944",
        }
    }

    /// Typical amount range in minor units (drawn log-uniformly).
    pub fn amount_range_minor(self) -> (i64, i64) {
        match self {
            Category::Breakfast => (600, 2_500),
            Category::Restaurant => (1_800, 30_000),
            Category::Coffee => (1_200, 4_500),
            Category::Supermarket => (2_000, 40_000),
            Category::Convenience => (300, 6_000),
            Category::Metro => (300, 900),
            Category::Fuel => (15_000, 50_000),
            Category::Apparel => (7_900, 90_000),
            Category::Electronics => (20_000, 499_900),
            Category::Pharmacy => (1_000, 25_000),
            Category::Cinema => (3_500, 18_000),
            Category::MarketStall => (150, 4_000),
            Category::Bookstore => (3_000, 30_000),
            Category::Jewelry => (50_000, 499_900),
        }
    }

    /// Share of a city's merchants, in per mille.
    fn share_per_mille(self) -> u32 {
        match self {
            Category::Breakfast => 90,
            Category::Restaurant => 220,
            Category::Coffee => 60,
            Category::Supermarket => 70,
            Category::Convenience => 120,
            Category::Metro => 0,
            Category::Fuel => 35,
            Category::Apparel => 100,
            Category::Electronics => 30,
            Category::Pharmacy => 50,
            Category::Cinema => 15,
            Category::MarketStall => 170,
            Category::Bookstore => 20,
            Category::Jewelry => 20,
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct MerchantSpec {
    pub index: u32,
    pub city: u8,
    pub city_name: String,
    #[serde(skip)]
    pub category: Category,
    pub name: String,
    pub created_at_ms: i64,
    /// A cash-out or mule-network accomplice (ground truth; never shown to the engine).
    pub colluder: bool,
    /// A fraudster's payee account, behind a QR code pasted over a real merchant's or the
    /// codes of a shop's compromised terminal: registered when it was created, never chosen
    /// by shoppers on their own.
    pub fraud_qr: bool,
}

/// Ground truth about a user. The engine never sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UserClass {
    Honest,
    /// Collusion ring members and synthetic identities.
    Fraud,
    /// First-party default: spends to the limit and never repays.
    Default,
}

#[derive(Debug, Clone)]
pub struct UserSpec {
    pub index: u32,
    pub class: UserClass,
    pub city: u8,
    /// Employer: coworkers share the office network.
    pub company: u32,
    pub limit_minor: i64,
    pub opened_at_ms: i64,
    pub birth_date: String,
    pub kyc_level: u8,
    pub region: &'static str,
    pub commuter: bool,
    pub car_owner: bool,
    /// Multiplies the mix's discretionary rate.
    pub activity: f32,
    pub repay_every_days: u32,
    pub late_days: u32,
    /// Favourite merchants, `FAVOURITES` per category, most used first.
    pub favourites: [u32; Category::COUNT * FAVOURITES],
    /// The credit application the line is opened on (mix `credit.applications`); `None`:
    /// a fixed `limit_minor`. With one, `limit_minor` is what the service granted.
    pub application: Option<crate::applicants::ApplicationSpec>,
}

pub const FAVOURITES: usize = 3;

pub struct World {
    pub merchants: Vec<MerchantSpec>,
    pub users: Vec<UserSpec>,
    /// Merchant indexes by `city * Category::COUNT + category`.
    pub by_city_category: Vec<Vec<u32>>,
    pub cities: Vec<String>,
}

const REGIONS: [&str; 6] = ["CN-SH", "CN-BJ", "CN-GD", "CN-GD", "CN-ZJ", "CN-SC"];

fn pick_weighted(rng: &mut fastrand::Rng, weights: &[u32]) -> usize {
    let total: u32 = weights.iter().sum();
    let mut x = rng.u32(..total.max(1));
    for (i, w) in weights.iter().enumerate() {
        if x < *w {
            return i;
        }
        x -= w;
    }
    weights.len() - 1
}

/// A skewed pick: low indexes (popular merchants) far more often.
pub fn pick_popular(rng: &mut fastrand::Rng, len: usize) -> usize {
    let u = rng.f64();
    ((u * u * u) * len as f64) as usize % len.max(1)
}

pub fn category_index(c: Category) -> usize {
    Category::ALL.iter().position(|x| *x == c).expect("listed")
}

impl World {
    pub fn merchants_in(&self, city: u8, category: Category) -> &[u32] {
        &self.by_city_category[city as usize * Category::COUNT + category_index(category)]
    }

    /// Builds merchants and users. `classes` gives the class of every user index.
    pub fn generate(
        mix: &Mix,
        users: u32,
        merchants: u32,
        start_ms: i64,
        classes: &[UserClass],
        rng: &mut fastrand::Rng,
    ) -> World {
        assert_eq!(classes.len(), users as usize);
        let weights: Vec<u32> = mix.cities.iter().map(|c| c.weight).collect();
        let ncities = mix.cities.len();
        let mut by_city_category = vec![Vec::new(); ncities * Category::COUNT];
        let mut merchant_specs = Vec::with_capacity(merchants as usize + ncities);
        let category_weights: Vec<u32> = Category::ALL.iter().map(|c| c.share_per_mille()).collect();
        // One metro operator per city.
        for city in 0..ncities {
            let index = merchant_specs.len() as u32;
            merchant_specs.push(MerchantSpec {
                index,
                city: city as u8,
                city_name: mix.cities[city].name.clone(),
                category: Category::Metro,
                name: format!("{} Metro", mix.cities[city].name),
                created_at_ms: start_ms - 3_000 * DAY_MS,
                colluder: false,
                fraud_qr: false,
            });
            by_city_category[city * Category::COUNT + category_index(Category::Metro)].push(index);
        }
        for _ in 0..merchants {
            let city = pick_weighted(rng, &weights);
            let category = Category::ALL[pick_weighted(rng, &category_weights)];
            // Most shops are years old; one in ten opened in the last two months.
            let age_days = if rng.u8(..10) == 0 { rng.i64(1..60) } else { rng.i64(180..2_000) };
            let index = merchant_specs.len() as u32;
            merchant_specs.push(MerchantSpec {
                index,
                city: city as u8,
                city_name: mix.cities[city].name.clone(),
                category,
                name: format!("{:?} {} #{index}", category, mix.cities[city].name),
                created_at_ms: start_ms - age_days * DAY_MS - rng.i64(0..DAY_MS),
                colluder: false,
                fraud_qr: false,
            });
            by_city_category[city * Category::COUNT + category_index(category)].push(index);
        }
        let fallback = ncities as u32 % merchant_specs.len() as u32;
        for list in by_city_category.iter_mut().take(Category::COUNT) {
            if list.is_empty() {
                // Tiny populations: fall back to any merchant at all.
                list.push(fallback);
            }
        }
        // A city without some category borrows the first city's (a chain with no local shop).
        for city in 1..ncities {
            for c in 0..Category::COUNT {
                if by_city_category[city * Category::COUNT + c].is_empty() {
                    by_city_category[city * Category::COUNT + c] = by_city_category[c].clone();
                }
            }
        }

        let h = &mix.honest;
        let mut user_specs = Vec::with_capacity(users as usize);
        for index in 0..users {
            let class = classes[index as usize];
            let city = pick_weighted(rng, &weights) as u8;
            let mut favourites = [0u32; Category::COUNT * FAVOURITES];
            for (c, slot) in favourites.chunks_mut(FAVOURITES).enumerate() {
                let list = &by_city_category[city as usize * Category::COUNT + c];
                for s in slot.iter_mut() {
                    *s = list[pick_popular(rng, list.len())];
                }
            }
            let limit_minor = h.limit_yuan[rng.usize(..h.limit_yuan.len())] * 100;
            let year = 1960 + rng.i64(0..45);
            let opened_days_ago = if class == UserClass::Honest { rng.i64(1..1_500) } else { rng.i64(15..200) };
            user_specs.push(UserSpec {
                index,
                class,
                city,
                company: rng.u32(..(users / 40).max(1)),
                limit_minor,
                opened_at_ms: start_ms - opened_days_ago * DAY_MS,
                birth_date: format!("{year}-{:02}-{:02}", rng.u8(1..13), rng.u8(1..29)),
                kyc_level: if rng.f64() < h.kyc_level_1_share { 1 } else { 2 },
                region: REGIONS[city as usize % REGIONS.len()],
                commuter: rng.f64() < h.commuter_share,
                car_owner: rng.f64() < h.car_owner_share,
                activity: (0.3 + rng.f32() * 1.4).min(2.0),
                repay_every_days: rng.u32(h.repay_every_days[0]..=h.repay_every_days[1]),
                late_days: if rng.f64() < h.late_repayer_share { rng.u32(h.late_days[0]..=h.late_days[1]) } else { 0 },
                favourites,
                application: None,
            });
        }
        World {
            merchants: merchant_specs,
            users: user_specs,
            by_city_category,
            cities: mix.cities.iter().map(|c| c.name.clone()).collect(),
        }
    }
}
