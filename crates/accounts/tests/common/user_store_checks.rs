//! The checks of the UserStore conformance suite (`ringfence_accounts::conformance`), named once
//! for every backend's test file.

/// Calls the macro `$each!` with the name of every check, in the order they run.
macro_rules! user_store_checks {
    ($each:ident) => {
        $each!(
            empty,
            ping,
            insert_and_find,
            missing_rows,
            duplicate_email,
            set_password_hash,
            set_admin,
            list_order,
            count,
            status_flags,
            delete,
            change_email,
            concurrent_email_change,
            list_by_id,
            set_email,
            finding_07_stored_lookalike_emails_are_rewritten_or_reported,
            run_all,
        );
    };
}
