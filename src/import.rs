//! `ringfence users import`: ASP.NET Core Identity users into the configured user store.

use ringfence_accounts::import::{json, ImportReport, Importer, SourceRow};
use ringfence_accounts::mongo::{aspnet_source, MongoDatabase};

use crate::cli::ImportArgs;
use crate::wiring::{Services, StartError};

/// Reads every user of the source, imports each into the accounts' store and prints the
/// counts (a row that cannot be imported is listed with the reason and the rest goes on).
pub async fn run(services: &Services, args: ImportArgs) -> Result<(), StartError> {
    let rows = read_source(&args).await?;
    let mut importer = Importer::new(services.accounts.users().as_ref(), services.clock.now());
    for row in rows {
        if let Err(e) = importer.add(row).await {
            print_report(importer.report());
            return Err(StartError(format!(
                "the import stopped: {e}; what is counted above is imported, and running it again carries on"
            )));
        }
    }
    print_report(&importer.finish());
    Ok(())
}

async fn read_source(args: &ImportArgs) -> Result<Vec<SourceRow>, StartError> {
    if let Some(path) = &args.aspnet_identity_json {
        let text = std::fs::read_to_string(path)
            .map_err(|e| StartError(format!("cannot read {}: {e}", path.display())))?;
        return json::rows(&text).map_err(|e| StartError(format!("{}: {e}", path.display())));
    }
    let Some(url) = &args.aspnet_identity else {
        return Err(StartError(
            "give --aspnet-identity mongodb://… or --aspnet-identity-json FILE".to_owned(),
        ));
    };
    let source = MongoDatabase::connect(url).await.map_err(|e| {
        StartError(format!(
            "cannot open the ASP.NET Core Identity database: {e}"
        ))
    })?;
    let collection = args
        .collection
        .as_deref()
        .unwrap_or(aspnet_source::DEFAULT_COLLECTION);
    let rows = aspnet_source::read_users(&source, collection)
        .await
        .map_err(|e| StartError(format!("cannot read the users: {e}")));
    source.close().await;
    rows
}

fn print_report(report: &ImportReport) {
    for (which, why) in &report.failed {
        println!("failed: {which}: {why}");
    }
    println!(
        "imported {}, skipped {} (already imported {}, deleted {}, no e-mail {}, duplicate address {}), failed {}",
        report.imported,
        report.skipped(),
        report.already_imported,
        report.skipped_deleted,
        report.skipped_no_email,
        report.skipped_duplicate,
        report.failed.len()
    );
    if report.two_factor_not_carried > 0 {
        println!(
            "note: {} imported users had two-factor sign-in on; their authenticator keys are not carried over, so they sign in with the password until they set up a second factor again",
            report.two_factor_not_carried
        );
    }
}
