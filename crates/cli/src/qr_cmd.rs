use clap::{Args, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;
use xiezhi_money::{Currency, Money, Sign};
use xiezhi_qr::{AccountTemplate, AdditionalData, DecodeOptions, MerchantPresentedQr, PointOfInitiation};

#[derive(Subcommand)]
pub enum QrCommand {
    /// Decode a payload and print it as JSON. Exits 2 with one line on stderr on a defect.
    Decode {
        /// The payload text (use `-` to read it from standard input).
        payload: String,
        /// Refuse content deviations instead of listing them in `warnings`.
        #[arg(long)]
        strict: bool,
    },
    /// Build a payload from flags; print it, and write a PNG or SVG image with --out.
    Encode(Box<EncodeArgs>),
}

#[derive(Args)]
pub struct EncodeArgs {
    /// Globally unique identifier of the merchant account template.
    #[arg(long, default_value = "cn.xiezhi.pay")]
    guid: String,
    /// Merchant id, written to sub-field 01 of the template.
    #[arg(long)]
    merchant_id: String,
    /// Merchant account template ID (26–51).
    #[arg(long, default_value = "26")]
    template_id: String,
    #[arg(long)]
    name: String,
    #[arg(long)]
    city: String,
    #[arg(long, default_value = "CN")]
    country: String,
    #[arg(long, default_value = "5411")]
    mcc: String,
    /// Alphabetic or numeric ISO 4217 code.
    #[arg(long, default_value = "CNY")]
    currency: String,
    /// Amount in major units ("12.30"); makes the code dynamic.
    #[arg(long)]
    amount: Option<String>,
    #[arg(long)]
    bill_number: Option<String>,
    #[arg(long)]
    postal_code: Option<String>,
    /// Write the QR image here; the extension picks the format (.png or .svg).
    #[arg(long)]
    out: Option<PathBuf>,
    /// Pixels per module in the image.
    #[arg(long, default_value_t = 8)]
    module_px: u32,
}

pub fn run(command: QrCommand) -> ExitCode {
    match command {
        QrCommand::Decode { payload, strict } => decode(&payload, strict),
        QrCommand::Encode(args) => match encode(&args) {
            Ok(payload) => {
                println!("{payload}");
                ExitCode::SUCCESS
            }
            Err(message) => {
                eprintln!("xiezhi qr encode: {message}");
                ExitCode::from(2)
            }
        },
    }
}

fn decode(payload: &str, strict: bool) -> ExitCode {
    let payload = if payload == "-" {
        let mut text = String::new();
        if let Err(e) = std::io::Read::read_to_string(&mut std::io::stdin(), &mut text) {
            eprintln!("xiezhi qr decode: cannot read standard input: {e}");
            return ExitCode::from(2);
        }
        text.trim_end_matches(['\r', '\n']).to_owned()
    } else {
        payload.to_owned()
    };
    match xiezhi_qr::decode(&payload, DecodeOptions { strict }) {
        Ok(qr) => {
            println!("{}", serde_json::to_string_pretty(&qr).expect("decoded payloads serialise"));
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("xiezhi qr decode: {} [{}]", error, error.code());
            ExitCode::from(2)
        }
    }
}

fn encode(args: &EncodeArgs) -> Result<String, String> {
    let currency =
        Currency::from_code(&args.currency).ok_or_else(|| format!("unknown currency `{}`", args.currency))?;
    let amount = match &args.amount {
        Some(text) => Some(Money::parse(text, currency, Sign::Positive).map_err(|e| e.to_string())?),
        None => None,
    };
    let qr = MerchantPresentedQr {
        payload_format_indicator: "01".into(),
        point_of_initiation: Some(if amount.is_some() {
            PointOfInitiation::Dynamic
        } else {
            PointOfInitiation::Static
        }),
        merchant_account_information: vec![AccountTemplate::template(
            &args.template_id,
            &args.guid,
            &[("01", &args.merchant_id)],
        )],
        merchant_category_code: Some(args.mcc.clone()),
        transaction_currency: currency.numeric_str(),
        transaction_amount: amount.map(Money::to_decimal_string),
        tip_or_convenience_indicator: None,
        convenience_fee_fixed: None,
        convenience_fee_percentage: None,
        country_code: Some(args.country.clone()),
        merchant_name: Some(args.name.clone()),
        merchant_city: Some(args.city.clone()),
        postal_code: args.postal_code.clone(),
        additional_data: AdditionalData { bill_number: args.bill_number.clone(), ..Default::default() },
        merchant_information_language: None,
        reserved: Default::default(),
        unreserved_templates: vec![],
        crc: String::new(),
        warnings: vec![],
    };
    let payload = qr.encode().map_err(|e| e.to_string())?;
    // What we write must pass our own strict decoder.
    xiezhi_qr::decode(&payload, DecodeOptions { strict: true })
        .map_err(|e| format!("the flags make a non-conforming code: {e}"))?;
    if let Some(out) = &args.out {
        let bytes = match out.extension().and_then(|e| e.to_str()) {
            Some("png") => xiezhi_qr::render_png(&payload, args.module_px).map_err(|e| e.to_string())?,
            Some("svg") => xiezhi_qr::render_svg(&payload, args.module_px).map_err(|e| e.to_string())?.into_bytes(),
            _ => return Err(format!("{}: use a .png or .svg file name", out.display())),
        };
        std::fs::write(out, bytes).map_err(|e| format!("{}: {e}", out.display()))?;
    }
    Ok(payload)
}
