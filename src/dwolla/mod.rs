//! The Dwolla Connect API client (issue 4). Placeholder until the client lands.
