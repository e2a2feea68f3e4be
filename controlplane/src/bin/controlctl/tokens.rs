//! `controlctl tokens`: the control plane's bearer tokens (admin only). A new token is printed
//! once; the control plane keeps only its hash.

use super::output::{format_ms, print_table};
use super::{connect, Failure, Target, TokensAction};
use proto::grpc;

pub(crate) async fn tokens(server: &Target, action: TokensAction) -> Result<(), Failure> {
    let mut client = connect(server).await?;
    match action {
        TokensAction::Create { name, role } => {
            let request = grpc::CreateTokenRequest { name: name.clone(), role: role.name().into() };
            let token = client.create_token(request).await?.into_inner().token;
            eprintln!("token '{name}' ({}) created; it is shown once:", role.name());
            println!("{token}");
        }
        TokensAction::List => {
            let tokens = client.list_tokens(grpc::ListTokensRequest {}).await?.into_inner().tokens;
            let rows: Vec<Vec<String>> =
                tokens.into_iter().map(|t| vec![t.name, t.role, format_ms(t.created_ms)]).collect();
            print_table(&["NAME", "ROLE", "CREATED"], &rows);
        }
        TokensAction::Revoke { name } => {
            client.revoke_token(grpc::RevokeTokenRequest { name: name.clone() }).await?;
            println!("token '{name}' revoked");
        }
    }
    Ok(())
}
