//! Failures in words a reader can act on, and which of them are worth retrying.
//!
//! The server reports refusals as an `error: {code, message}` object inside a normal answer
//! (a `<script>` cannot see HTTP statuses); its `message` is English for developers, so the page
//! maps each code to its own sentence instead of showing it.

use chat_shared::{ErrorCode, TextError, WireError};

/// The sentence shown to the reader for an error the server returned through the callback.
pub fn describe_wire_error(error: &WireError) -> String {
    describe_code(error.code).to_owned()
}

/// The sentence for one error code, without a trailing period like every error text here.
pub fn describe_code(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::MessageTooLong => "The message is longer than the server accepts; shorten it and try again",
        ErrorCode::NameTooLong => "This nickname is longer than the server accepts; choose a shorter one",
        ErrorCode::EmptyMessage => "An empty message cannot be sent",
        ErrorCode::ControlCharacter => {
            "The text contains an invisible control character the server refuses; remove it and try again"
        }
        ErrorCode::InvalidEncoding => "The server could not read the text (invalid encoding)",
        ErrorCode::RateLimited => "You are sending too fast; wait a moment and try again",
        ErrorCode::TooManyPolls => "Too many chat tabs are open from this address; close some and try again",
        ErrorCode::StorageFailed => "The server could not save the message; nothing was sent, try again",
        ErrorCode::ShuttingDown => "The server is restarting; try again in a moment",
        ErrorCode::RequestTooLarge => "The request is too large for the server",
        ErrorCode::TooManyParameters => "The request has more parameters than the server reads",
        ErrorCode::InvalidCid => "The page sent a message id the server does not accept; reload the page",
        ErrorCode::InvalidRoom => "This room name is not one the server accepts; pick another room",
        ErrorCode::TooManyRooms => "The server has as many rooms open as it may; trying again shortly",
        ErrorCode::InvalidLast => "The page asked for more history than the server gives at once",
        ErrorCode::InvalidBefore => "The page asked for earlier history in a way the server does not accept",
        ErrorCode::HistoryTrimmed => {
            "Older messages are no longer kept by the server; the history shown starts later"
        }
        ErrorCode::InvalidName => {
            "This nickname contains invisible or text-direction characters the server refuses; choose another"
        }
    }
}

/// Whether the same request may succeed later unchanged. The others are about the text or the
/// name itself, so repeating them would only fail again.
pub fn is_retryable(code: ErrorCode) -> bool {
    match code {
        ErrorCode::RateLimited
        | ErrorCode::TooManyPolls
        | ErrorCode::StorageFailed
        | ErrorCode::ShuttingDown
        | ErrorCode::TooManyRooms => true,
        ErrorCode::MessageTooLong
        | ErrorCode::NameTooLong
        | ErrorCode::EmptyMessage
        | ErrorCode::ControlCharacter
        | ErrorCode::InvalidEncoding
        | ErrorCode::RequestTooLarge
        | ErrorCode::TooManyParameters
        | ErrorCode::InvalidCid
        | ErrorCode::InvalidRoom
        | ErrorCode::InvalidLast
        | ErrorCode::InvalidBefore
        | ErrorCode::InvalidName
        | ErrorCode::HistoryTrimmed => false,
    }
}

/// The sentence for a draft the page will not send, found before asking the server.
pub fn describe_draft_problem(problem: &TextError) -> String {
    match problem {
        TextError::Empty => describe_code(ErrorCode::EmptyMessage).to_owned(),
        TextError::TooLong { length, limit, .. } => {
            format!("The message has {length} characters; the limit is {limit}")
        }
        TextError::ControlCharacter { code_point, .. } => format!(
            "The message contains an invisible control character (U+{code_point:04X}); remove it to send"
        ),
        // Name rules: a message's text is never checked for them.
        TextError::BidiControl { .. } | TextError::InvisibleCharacter { .. } => {
            describe_code(ErrorCode::InvalidName).to_owned()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_a_sentence_without_the_wire_spelling() {
        for code in ErrorCode::ALL {
            let sentence = describe_code(code);
            assert!(!sentence.is_empty(), "{code:?} has no sentence");
            assert!(
                !sentence.contains(code.as_str()),
                "{code:?} shows the machine code"
            );
            assert!(!sentence.ends_with('.'), "{code:?} ends with a period");
        }
    }

    #[test]
    fn the_server_message_is_not_shown() {
        let error = WireError {
            code: ErrorCode::RateLimited,
            message: "too many saves from 10.0.0.1".to_owned(),
        };
        assert_eq!(
            describe_wire_error(&error),
            describe_code(ErrorCode::RateLimited)
        );
    }

    #[test]
    fn only_transient_refusals_are_retried() {
        let retryable: Vec<_> = ErrorCode::ALL
            .into_iter()
            .filter(|code| is_retryable(*code))
            .collect();
        assert_eq!(
            retryable,
            [
                ErrorCode::RateLimited,
                ErrorCode::TooManyPolls,
                ErrorCode::StorageFailed,
                ErrorCode::ShuttingDown,
                ErrorCode::TooManyRooms
            ]
        );
    }

    #[test]
    fn draft_problems_name_the_numbers() {
        let too_long = TextError::TooLong {
            field: "msg",
            length: 2001,
            limit: 2000,
        };
        assert_eq!(
            describe_draft_problem(&too_long),
            "The message has 2001 characters; the limit is 2000"
        );
        let control = TextError::ControlCharacter {
            field: "msg",
            code_point: 0x0b,
        };
        assert!(describe_draft_problem(&control).contains("U+000B"));
    }
}
